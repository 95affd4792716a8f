"""The training criterion has no host synchronisation: `DFRCriterion.forward` compiles with
`torch.compile(fullgraph=True)` (any `.item()`, `.tolist()`, `int(tensor)` or data-dependent
shape on the loss path would break the graph and fail here), and the compiled losses and
gradients equal the eager ones. Tiny shapes: one compilation of about a minute on a CPU."""
import torch

from dfr.modeling.criterion import DFRCriterion
from dfr.modeling.losses import PairwiseParams

B, K, D, H, W = 2, 3, 4, 12, 10


def _step(fn):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(B, K, H // 2, W // 2, generator=g).mul(3).requires_grad_()
    feats = torch.randn(B, D, H // 2, W // 2, generator=g).relu().requires_grad_()
    image = torch.randn(B, 3, H, W, generator=g)
    labels = torch.randint(0, K, (B, H, W), generator=g)
    labels[torch.rand(B, H, W, generator=g) < 0.5] = 255
    valid = torch.rand(B, H, W, generator=g) > 0.1
    out = fn({"logits": logits, "feats": feats}, image, labels, valid)
    sum(out.values()).backward()
    return {k: v.detach() for k, v in out.items()}, logits.grad, feats.grad


def test_criterion_compiles_as_one_graph_with_the_eager_values_and_gradients():
    crit = DFRCriterion(pairwise=PairwiseParams(radius=1, sigma_feat=2.0), loss_stride=2,
                        feat_supervision="both", gamma=0.9)
    losses, g_logits, g_feats = _step(crit)
    assert set(losses) == {"loss_pce", "loss_dfr", "loss_fd", "loss_fr"}
    assert all(float(v) > 0 for v in losses.values()), losses  # every term is exercised
    c_losses, c_logits, c_feats = _step(torch.compile(crit, fullgraph=True))
    for k, v in losses.items():
        assert abs(float(c_losses[k]) - float(v)) <= 1e-5 * abs(float(v)), k
    for got, ref in ((c_logits, g_logits), (c_feats, g_feats)):
        assert float(ref.abs().max()) > 0
        assert float((got - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
