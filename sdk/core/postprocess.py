"""Logits -> mask on the host. Three functions, one answer:

- ``logits_to_mask``: the full computation (bilinear, half-pixel, no antialias, of all K channels to the output
  size, then argmax), as transformers' ``post_process_semantic_segmentation`` and the in-graph "exact" head do.
- ``refine_mask``: the same mask at a cost close to a nearest upsampling of the low-resolution argmax. Bilinear
  interpolation is a convex combination of the 4 neighbouring logit vectors; where those 4 share their argmax
  class c, c wins for every output pixel between them (each neighbour's c-logit is >= its k-logit, so every
  weighted sum keeps the order; with argmax's first-index rule also at ties). Only the output pixels of cells
  whose 4 corners disagree are interpolated, and there only for the classes that can win: a class whose largest
  corner logit is below the cell's ``max_c min_corner l_c`` is beaten everywhere in the cell.
- ``mask_agreement``: how a mask compares with the full computation, counting differences at exact float ties.

Leaf module: numpy (and OpenCV for ``logits_to_mask``).
"""
from __future__ import annotations

import numpy as np

from sdk.core.errors import require_cv2
from sdk.core.parallel import host_parts, run_parts

# candidate slack: a class is kept if its best corner logit is within this (relative) margin of the cell's bound,
# so float rounding in the interpolation can never drop the true winner
_SLACK = 1e-5
# cells evaluated per chunk are limited so that (cells x candidates x pixels per cell) stays about this size
_CHUNK_ELEMENTS = 1 << 21
# below this many interpolated values (mixed-cell pixels x classes) one thread is quicker than a hand-off
_PARALLEL_ELEMENTS = 1 << 20
_BUCKETS = np.array([1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 1 << 30])


def mask_dtype(num_classes: int) -> type:
    return np.uint8 if num_classes <= 256 else np.int32


def logits_to_mask(logits: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """logits: (K, h, w) float32 -> (H, W) class ids (uint8 up to 256 classes, else int32). The full computation."""
    cv2 = require_cv2()

    k = logits.shape[0]
    hwk = np.ascontiguousarray(logits.transpose(1, 2, 0))
    # OpenCV 5 resizes at most 128 channels at once (4.x: 512); its INTER_LINEAR uses PyTorch's half-pixel centres
    parts = [cv2.resize(hwk[..., i:i + 128], (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)
             for i in range(0, k, 128)]
    up = np.concatenate([p.reshape(out_hw[0], out_hw[1], -1) for p in parts], axis=2)
    return up.argmax(axis=2).astype(mask_dtype(k))


def source_coords(n_out: int, n_in: int, extent: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's ``align_corners=False`` source index for each output position along one axis.

    extent: how many input positions the output spans (default ``n_in``; less for a letterboxed image whose
    content covers only part of the logits). Returns (i0 int64 (n_out,), fraction float32 (n_out,)): the output
    position interpolates inputs i0 and min(i0 + 1, n_in - 1) with weights 1 - fraction and fraction."""
    extent = float(n_in if extent is None else extent)
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (extent / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    return i0, (src - i0).astype(np.float32)


def refine_mask(logits: np.ndarray, argmax: np.ndarray | None, out_hw: tuple[int, int], *,
                extent_hw: tuple[float, float] | None = None) -> np.ndarray:
    """The exact head's mask (bilinear logits to ``out_hw``, argmax), computed only where it is not already known.

    logits: (K, h, w) float32, one image. argmax: (h, w) integer class ids at the logits' resolution (the graph's
    ``argmax`` output), or None to compute it here. extent_hw: the part of the logits the output spans, in logit
    pixels from the top-left (default all of it; see ``source_coords``). Returns (H, W) uint8 (int32 above 256
    classes). Identical to ``logits_to_mask`` except at float ties between the two best classes.
    """
    k, h, w = logits.shape
    H, W = int(out_hw[0]), int(out_hw[1])
    if argmax is None:
        argmax = logits.argmax(axis=0)
    a = argmax.astype(mask_dtype(k), copy=False)
    ext = extent_hw or (h, w)
    y0, fy = source_coords(H, h, ext[0])
    x0, fx = source_coords(W, w, ext[1])
    # output rows/cols per low-resolution cell (source indices are non-decreasing, so cells are contiguous runs)
    ny, nx = np.bincount(y0, minlength=h), np.bincount(x0, minlength=w)
    mask = np.repeat(np.repeat(a, nx, axis=1), ny, axis=0)
    # a cell (i, j) interpolates corners (i, j), (i, j+1), (i+1, j), (i+1, j+1), clamped at the last row/column
    p = np.pad(a, ((0, 1), (0, 1)), mode="edge")
    mixed = (p[:-1, :-1] != p[1:, :-1]) | (p[:-1, :-1] != p[:-1, 1:]) | (p[:-1, :-1] != p[1:, 1:])
    mixed &= (ny[:, None] > 0) & (nx[None, :] > 0)
    cy, cx = np.nonzero(mixed)
    if cy.size == 0:
        return mask
    cy1, cx1 = np.minimum(cy + 1, h - 1), np.minimum(cx + 1, w - 1)
    cell_rows, cell_cols = ny[cy], nx[cx]  # output pixels of each mixed cell, down and across
    pixels = cell_rows * cell_cols
    # the candidates of runs of mixed cells side by side on the usable cores when there is enough work (the takes
    # and reductions over all K classes; the refinement below runs many small numpy calls, quicker in one thread)
    n_parts = host_parts() if int(pixels.sum()) * k >= _PARALLEL_ELEMENTS else 1
    parts = [slice(j * cy.size // n_parts, (j + 1) * cy.size // n_parts) for j in range(n_parts)]
    plane = logits.reshape(k, -1)
    cands = run_parts(lambda s: _candidates(plane, w, cy[s], cx[s], cy1[s], cx1[s]), parts)
    cand_k, count = np.concatenate([c[0] for c in cands]), np.concatenate([c[1] for c in cands])
    first = np.concatenate([[0], np.cumsum(count)[:-1]])
    if 3 * int(np.dot(count, pixels)) > k * H * W:  # noise-like logits: nearly every class everywhere
        return logits_to_mask(logits, (H, W))
    row_start = np.concatenate([[0], np.cumsum(ny)[:-1]])
    col_start = np.concatenate([[0], np.cumsum(nx)[:-1]])
    flat = mask.reshape(-1)
    # cells run in groups of similar candidate counts (rounded up to a few sizes; a repeated candidate changes
    # nothing) and of one block shape (the cells taller or wider than the usual cell, at the image's first rows
    # and columns, apart), in pieces of bounded size
    size = _BUCKETS[np.searchsorted(_BUCKETS, count)]
    size = np.where(size > k, k, size)
    tall = cell_rows > np.bincount(cell_rows).argmax()
    wide = cell_cols > np.bincount(cell_cols).argmax()
    key = size * 4 + tall * 2 + wide
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    for g in np.unique(sorted_key):
        group = order[np.searchsorted(sorted_key, g):np.searchsorted(sorted_key, g, side="right")]
        r_off, c_off = np.arange(int(cell_rows[group].max())), np.arange(int(cell_cols[group].max()))
        piece = max(1, _CHUNK_ELEMENTS // (r_off.size * c_off.size))
        for s0 in range(0, group.size, piece):
            _refine_cells(flat, logits, group[s0:s0 + piece], int(g) // 4, cand_k, first, count, cy, cx, cy1, cx1,
                          ny, nx, row_start, col_start, r_off, c_off, fy, fx, H, W)
    return mask


def _candidates(plane: np.ndarray, w: int, cy, cx, cy1, cx1) -> tuple[np.ndarray, np.ndarray]:
    """The classes that can win somewhere in each cell (corners (cy, cx)..(cy1, cx1) of the (K, h * w) ``plane``):
    (cand_k, count), cell b's candidates being the next count[b] of cand_k, in ascending class order."""
    c00, c01, c10, c11 = (np.take(plane, r * w + c, axis=1) for r, c in ((cy, cx), (cy, cx1), (cy1, cx), (cy1, cx1)))
    bound = np.minimum(np.minimum(c00, c01), np.minimum(c10, c11)).max(axis=0)  # every pixel's best is >= this
    best = np.maximum(np.maximum(c00, c01), np.maximum(c10, c11))  # no pixel's k-logit exceeds this
    cand_b, cand_k = np.nonzero((best >= bound - _SLACK * (1.0 + np.abs(bound))).T)  # by cell, classes ascending
    return cand_k, np.bincount(cand_b, minlength=cy.size)


def _refine_cells(flat, logits, cells, n_cand, cand_k, first, count, cy, cx, cy1, cx1, ny, nx, row_start, col_start,
                  r_off, c_off, fy, fx, H, W) -> None:
    """Interpolate the ``n_cand`` candidate classes of each of ``cells`` over its output pixels; write the argmax
    (first index among equal values, as the candidates are in ascending class order) into ``flat``.

    Every cell is laid out as a block of the group's largest cell (r_off, c_off); a smaller cell's extra rows and
    columns repeat its own last row/column, so they recompute (and rewrite) the same pixel with the same value and
    need no mask. The block-sized arrays are allocated once per call and written in place."""
    y, x, y1, x1 = cy[cells], cx[cells], cy1[cells], cx1[cells]
    rows = row_start[y][:, None] + np.minimum(r_off[None, :], ny[y][:, None] - 1)  # (b, ry)
    cols = col_start[x][:, None] + np.minimum(c_off[None, :], nx[x][:, None] - 1)  # (b, rx)
    wy, wx = fy[rows][:, :, None], fx[cols][:, None, :]  # (b, ry, 1), (b, 1, rx)
    shape = (cells.size, rows.shape[1], cols.shape[1])
    best, val = np.empty(shape, logits.dtype), np.empty(shape, logits.dtype)
    win, better = np.empty(shape, flat.dtype), np.empty(shape, bool)
    plane, w = logits.reshape(logits.shape[0], -1), logits.shape[2]
    # every cell's candidates, the last repeated to n_cand: (b, n); then its 4 corners' logits of them, (b, n, 1)
    ks = cand_k[first[cells][:, None] + np.minimum(np.arange(n_cand)[None, :], count[cells][:, None] - 1)]
    v00, v01, v10, v11 = (plane[ks, (r * w + c)[:, None]][:, :, None] for r, c in ((y, x), (y, x1), (y1, x), (y1, x1)))
    top = v00 + (v01 - v00) * wx  # (b, n, rx): along x first, then along y
    rise = (v10 + (v11 - v10) * wx) - top
    kk = ks.astype(flat.dtype)[:, :, None]  # (b, n, 1)
    for j in range(n_cand):
        out = best if j == 0 else val
        np.multiply(rise[:, j, None, :], wy, out=out)  # (b, ry, rx)
        np.add(top[:, j, None, :], out, out=out)
        if j == 0:
            win[...] = kk[:, :1]
            continue
        np.greater(val, best, out=better)
        if j < n_cand - 1:
            np.maximum(best, val, out=best)
        np.copyto(win, kk[:, j, None], where=better)
    flat[(rows[:, :, None] * W + cols[:, None, :]).reshape(-1)] = win.reshape(-1)


def refine_masks(logits: np.ndarray, argmax: np.ndarray | None, out_hw: tuple[int, int], *,
                 extent_hw: tuple[float, float] | None = None) -> np.ndarray:
    """Batch form of ``refine_mask``: logits (N, K, h, w), argmax (N, h, w) or None -> (N, H, W)."""
    return np.stack([refine_mask(lg, None if argmax is None else argmax[i], out_hw, extent_hw=extent_hw)
                     for i, lg in enumerate(logits)])


def interpolated_logits_at(logits: np.ndarray, out_hw: tuple[int, int], iy: np.ndarray, ix: np.ndarray, *,
                           extent_hw: tuple[float, float] | None = None) -> np.ndarray:
    """The full bilinear upsampling to ``out_hw``, in float64, at output pixels (iy, ix) only: (K, n).
    The reference ``mask_agreement`` measures ties with."""
    k, h, w = logits.shape
    ext = extent_hw or (h, w)
    y0, fy = source_coords(out_hw[0], h, ext[0])
    x0, fx = source_coords(out_hw[1], w, ext[1])
    a, b = y0[iy], x0[ix]
    a1, b1 = np.minimum(a + 1, h - 1), np.minimum(b + 1, w - 1)
    wy, wx = fy[iy].astype(np.float64), fx[ix].astype(np.float64)
    lg = logits.astype(np.float64)
    top = lg[:, a, b] * (1 - wx) + lg[:, a, b1] * wx
    bottom = lg[:, a1, b] * (1 - wx) + lg[:, a1, b1] * wx
    return top * (1 - wy) + bottom * wy


def mask_agreement(mask: np.ndarray, reference: np.ndarray, logits: np.ndarray, *, tie_tol: float = 1e-4,
                   extent_hw: tuple[float, float] | None = None) -> dict:
    """Compare a mask with a reference mask of the same logits (K, h, w).

    Where they differ, the float64 interpolated logits of the two classes are compared: a difference is a "tie"
    when the two classes' interpolated logits differ by at most ``tie_tol`` (absolute, in logit units; float32
    interpolation by different kernels differs by ~1e-6 here). Returns pixels, identical (fraction),
    differing, ties and other (differences that are not ties: these mean a wrong mask).
    """
    diff = mask != reference
    n = int(diff.sum())
    out = {"pixels": int(mask.size), "identical": 1.0 - n / mask.size, "differing": n, "ties": 0, "other": 0}
    if n:
        iy, ix = np.nonzero(diff)
        full = interpolated_logits_at(logits, mask.shape, iy, ix, extent_hw=extent_hw)  # (K, n)
        cols = np.arange(n)
        gap = np.abs(full[mask[iy, ix].astype(np.int64), cols] - full[reference[iy, ix].astype(np.int64), cols])
        out["ties"] = int(np.sum(gap <= tie_tol))
        out["other"] = n - out["ties"]
    return out


def padded_output_hw(image_hw: tuple[int, int], net_hw: tuple[int, int],
                     content_hw: tuple[int, int]) -> tuple[int, int]:
    """The mask size to ask an in-graph head for when the image fills only ``content_hw`` of the network input
    (letterbox/pad): the whole input at the image's scale; its top-left ``image_hw`` is the image's mask."""
    if tuple(content_hw) == tuple(net_hw):
        return int(image_hw[0]), int(image_hw[1])
    return (max(int(image_hw[0]), round(image_hw[0] * net_hw[0] / content_hw[0])),
            max(int(image_hw[1]), round(image_hw[1] * net_hw[1] / content_hw[1])))


def masks_from_logits(outputs: dict, image_hw: tuple[int, int], *, net_hw: tuple[int, int] | None = None,
                      content_hw: tuple[int, int] | None = None) -> np.ndarray:
    """(N, H, W) masks from a logits or refine head's outputs (``logits`` (N, K, h, w), optional ``argmax``).

    With ``argmax`` (refine head): ``refine_mask`` over the logits' part that the content covers. Without (logits
    head): the full computation, at the padded size and cropped when the content does not fill the input."""
    logits = outputs["logits"]
    h4, w4 = logits.shape[2:]
    padded = net_hw is not None and content_hw is not None and tuple(net_hw) != tuple(content_hw)
    if "argmax" in outputs:
        extent = (h4 * content_hw[0] / net_hw[0], w4 * content_hw[1] / net_hw[1]) if padded else None
        return refine_masks(logits, outputs["argmax"], image_hw, extent_hw=extent)
    out_hw = padded_output_hw(image_hw, net_hw, content_hw) if padded else tuple(image_hw)
    return np.stack([logits_to_mask(lg, out_hw)[:image_hw[0], :image_hw[1]] for lg in logits])
