"""Video streams: sources (camera, CSI, RTSP, files), the threaded pipeline, rendering and stream statistics."""
