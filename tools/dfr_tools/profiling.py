"""Kernel counts from torch.profiler events, shared by the benchmark tools."""

__all__ = ["NO_KERNEL_OPS", "launching_ops"]

#: ATen ops that never launch a kernel (views, allocation)
NO_KERNEL_OPS = frozenset({
    "aten::as_strided", "aten::slice", "aten::select", "aten::unsqueeze", "aten::view",
    "aten::expand", "aten::permute", "aten::transpose", "aten::alias", "aten::squeeze",
    "aten::_reshape_alias", "aten::t", "aten::narrow", "aten::detach", "aten::reshape",
    "aten::resolve_conj", "aten::resolve_neg", "aten::unflatten", "aten::empty",
    "aten::empty_strided", "aten::empty_like", "aten::resize_",
})


def launching_ops(events):
    """(leaf ATen events that launch a kernel, all leaf ATen events) of a profile: an ATen op
    whose children are ATen ops dispatches them and launches nothing itself."""
    aten = [e for e in events if e.name.startswith("aten::")]
    leaf = [e for e in aten if not any(c.name.startswith("aten::") for c in e.cpu_children)]
    return [e for e in leaf if e.name not in NO_KERNEL_OPS], leaf
