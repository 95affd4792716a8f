"""The settings of the pairwise losses (Eq. 3-13), one typed object for every entry point."""
from dataclasses import dataclass, fields, replace

__all__ = ["PairwiseParams", "IMPLS"]

#: implementations of the pairwise pass: "torch" (shifted views, any device and dtype),
#: "triton" (fused kernels, float32), "auto" (Triton on CUDA when it compiles, else torch)
IMPLS = ("auto", "triton", "torch")


@dataclass(frozen=True)
class PairwiseParams:
    """Kernel, window and label settings shared by Ldfr, Lfd, Lfr and the diagnostics.

    Attributes:
        radius: r of the (2r+1)² window R (Eq. 3).
        sigma_xy, sigma_rgb, sigma_feat: σ1, σ2, σ3 of K (Eq. 6); Kf (Eq. 13) uses σ1 and σ2.
        stride: S = stride·(x, y) in loss-map pixels (Eq. 6).
        use_xy, use_rgb, use_feat: the kernel terms of Ldfr (Table 5); all off: K = 1.
        background: class id of background for A⁺bg / A⁺fg (Eq. 11); -1: none.
        fr_pairs: pairs of Lfr, "RA" (Eq. 12) or "R" (every valid window pair).
        ignore_index: label of unlabeled pixels.
    """

    radius: int = 5
    sigma_xy: float = 6.0
    sigma_rgb: float = 0.5
    sigma_feat: float = 50.0
    stride: float = 1.0
    use_xy: bool = True
    use_rgb: bool = True
    use_feat: bool = True
    background: int = 0
    fr_pairs: str = "RA"
    ignore_index: int = 255

    def __post_init__(self):
        r = self.radius
        if isinstance(r, bool) or int(r) != r or r < 0:
            raise ValueError(f"`radius` must be a non-negative integer, got {r!r}")
        object.__setattr__(self, "radius", int(r))
        for name in ("sigma_xy", "sigma_rgb", "sigma_feat", "stride"):
            v = float(getattr(self, name))
            if not v > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)!r}")
            object.__setattr__(self, name, v)
        for name in ("use_xy", "use_rgb", "use_feat"):
            object.__setattr__(self, name, bool(getattr(self, name)))
        if self.fr_pairs not in ("RA", "R"):
            raise ValueError(f"`fr_pairs` must be 'RA' or 'R', got {self.fr_pairs!r}")
        object.__setattr__(self, "background", int(self.background))
        object.__setattr__(self, "ignore_index", int(self.ignore_index))

    def replace(self, **changes) -> "PairwiseParams":
        """A copy with `changes`; an unknown name raises TypeError naming it and the fields."""
        names = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"unknown pairwise setting(s) {unknown}; expected some of "
                            f"{sorted(names)}")
        return replace(self, **changes)
