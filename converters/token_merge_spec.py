"""The token-merge option of an export (``segedge export --token-merge``, the report's ``--token-merges``): which
stages merge their attention queries 2x2, parsed and checked. Apart from ``converters.token_merge`` (the torch
modules that do the merging) so the speed menu and the CLI read the option without importing torch.
"""
from __future__ import annotations

from dataclasses import dataclass

from sdk.core.errors import InputError

MODES = ("none", "2x2")
DEFAULT_STAGES = (1, 2)


@dataclass(frozen=True, kw_only=True)
class TokenMerge:
    """Which token merge to export: ``mode`` "none" or "2x2"; ``stages`` 1-based encoder stages (1 = 1/4 scale)."""

    mode: str = "none"
    stages: tuple[int, ...] = DEFAULT_STAGES

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"token merge mode: expected one of {MODES}, got {self.mode!r}")
        stages = tuple(self.stages)
        if not stages or any(not isinstance(s, int) or isinstance(s, bool) or not 1 <= s <= 4 for s in stages) \
                or len(set(stages)) != len(stages):
            raise InputError(f"token merge stages: expected distinct stage numbers in 1..4, got {self.stages!r}")
        object.__setattr__(self, "stages", tuple(sorted(stages)))

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    @property
    def spec(self) -> str:
        """The command-line form: "none", "2x2" (default stages) or "2x2:1+2+3+4"."""
        if not self.enabled:
            return "none"
        return self.mode if self.stages == DEFAULT_STAGES else f"{self.mode}:{'+'.join(map(str, self.stages))}"

    def to_dict(self) -> dict:
        return {"mode": self.mode, "stages": list(self.stages) if self.enabled else []}

    @classmethod
    def from_dict(cls, d: dict | None) -> "TokenMerge":
        if not d or d.get("mode", "none") == "none":
            return cls()
        return cls(mode=d["mode"], stages=tuple(d["stages"]))


def parse_token_merge(text: str | TokenMerge | None) -> TokenMerge:
    """"none" | "2x2" (stages 1 and 2) | "2x2:1+2+3+4" -> TokenMerge; a TokenMerge or None passes through."""
    if text is None:
        return TokenMerge()
    if isinstance(text, TokenMerge):
        return text
    mode, colon, stages = str(text).strip().partition(":")
    if colon and not stages.strip():
        raise InputError(f"token merge {text!r}: a ':' with no stages after it; expected e.g. '{mode}:1+2', or "
                         f"'{mode}' alone for the default stages (1 and 2)")
    if mode == "none" and stages:
        raise InputError(f"token merge {text!r}: 'none' takes no stages. Use 'none' or e.g. '2x2:1+2'.")
    if not stages:
        return TokenMerge(mode=mode)
    try:
        numbers = tuple(int(s) for s in stages.split("+"))
    except ValueError:
        raise InputError(f"token merge {text!r}: expected MODE or MODE:STAGES with stages joined by '+', "
                         "e.g. '2x2' or '2x2:1+2+3'") from None
    return TokenMerge(mode=mode, stages=numbers)
