"""Every config key DFR adds to Detectron2's defaults, in one place.

Keys are namespaced (MODEL.SWIN, MODEL.UPERNET, MODEL.AUX_HEAD, MODEL.DFR, INPUT.DFR, ...);
no Detectron2 default is overwritten here. Values are the paper's recipe
(the DFR paper (arXiv:2108.01296), Sect. 4.2) unless a comment says otherwise.
"""
from detectron2.config import CfgNode as CN

__all__ = ["add_dfr_config", "get_dfr_cfg"]


def add_dfr_config(cfg):
    """Add DFR's keys to a Detectron2 config (call once, before merge_from_file), and register
    what a DFR config names: the model parts (`dfr.modeling.register_model_parts`) and the
    builtin dataset names (`dfr.data`)."""
    from . import data  # noqa: F401  (registers the builtin dataset names)
    from .modeling import register_model_parts

    register_model_parts()

    # ---- Swin backbone (timm, features_only) ----
    cfg.MODEL.SWIN = CN()
    cfg.MODEL.SWIN.SIZE = "B"  # "T" | "S" | "B" | "L" | "custom" (custom: the 3 keys below)
    # The size's shape. SIZE "custom": all three are required. T / S / B / L: unset (0 / []),
    # or that size's own values; other values are an error (set SIZE "custom" to use them).
    cfg.MODEL.SWIN.EMBED_DIM = 0
    cfg.MODEL.SWIN.DEPTHS = []
    cfg.MODEL.SWIN.NUM_HEADS = []
    cfg.MODEL.SWIN.PATCH_SIZE = 4
    cfg.MODEL.SWIN.WINDOW_SIZE = 12  # paper: Swin-B, window 12, IN-22K at 384
    cfg.MODEL.SWIN.PRETRAIN_IMG_SIZE = 384  # image size the backbone is created for
    cfg.MODEL.SWIN.MLP_RATIO = 4.0
    cfg.MODEL.SWIN.DROP_PATH_RATE = 0.3
    # Activation checkpointing of every Swin block (the official Swin segmentation code's
    # `use_checkpoint`): activations are recomputed in the backward pass, trading about a
    # third more backbone time for less training memory. Same values and gradients.
    cfg.MODEL.SWIN.USE_CHECKPOINT = False
    # mmseg's frozen_stages: -1 trains all; k >= 0 freezes the patch embedding and, for
    # k >= 1, stages 0..k-1 with their patch merging (at the stage end, as in mmseg) and
    # their output norms.
    cfg.MODEL.SWIN.FROZEN_STAGES = -1
    cfg.MODEL.SWIN.OUT_NORM = True  # LayerNorm on each output (as the Swin UperNet recipe)
    cfg.MODEL.SWIN.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    # Local file: official Microsoft Swin / mmseg / timm checkpoint (.pth/.pkl/.safetensors).
    # Empty: random init. Never downloaded.
    cfg.MODEL.SWIN.PRETRAINED = ""
    # Checkpoints (MODEL.WEIGHTS, MODEL.SWIN.PRETRAINED) are read with
    # torch.load(weights_only=True) / a numpy-only unpickler for .pkl: a file that needs more
    # (pickled classes or functions, which can run code) is refused with an error. True: load
    # such files in full; set it only for files you trust.
    cfg.MODEL.ALLOW_UNSAFE_CHECKPOINT = False
    # Load a full checkpoint (MODEL.WEIGHTS) whose tensors partly have other shapes: another
    # number of classes, or another head (e.g. fewer UperNet levels). Those tensors keep their
    # new initialisation (fine-tuning). Off: such a checkpoint is an error naming the keys
    # (and both class counts), so that --eval-only never evaluates a random classifier.
    cfg.MODEL.SKIP_MISMATCHED_WEIGHTS = False

    # ---- UperNet fusion (PPM on res5 + FPN), Sect. 4.2 / Fig. 2 ----
    cfg.MODEL.UPERNET = CN()
    cfg.MODEL.UPERNET.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.UPERNET.CHANNELS = 512  # per level; fused map = CHANNELS x len(FUSION_LEVELS)
    cfg.MODEL.UPERNET.POOL_SCALES = [1, 2, 3, 6]
    # Which FPN outputs are concatenated into the shared fused map (Table 6 rows).
    cfg.MODEL.UPERNET.FUSION_LEVELS = ["res2", "res3", "res4", "res5"]

    # ---- Semantic head (UperNet scene head); NUM_CLASSES / IGNORE_VALUE / NORM are
    # Detectron2's MODEL.SEM_SEG_HEAD keys ----
    cfg.MODEL.SEM_SEG_HEAD.DROPOUT = 0.1

    # ---- Auxiliary FCN head on res4 (Swin UperNet recipe) ----
    cfg.MODEL.AUX_HEAD = CN()
    cfg.MODEL.AUX_HEAD.ENABLED = True
    cfg.MODEL.AUX_HEAD.IN_FEATURE = "res4"
    cfg.MODEL.AUX_HEAD.CHANNELS = 256
    cfg.MODEL.AUX_HEAD.LOSS_WEIGHT = 0.4

    # ---- DFR losses and feature-consistency head (Eq. 1-13) ----
    cfg.MODEL.DFR = CN()
    cfg.MODEL.DFR.FEAT_DIM = 128  # d, channels of the feature-consistency head
    cfg.MODEL.DFR.LAMBDA_DFR = 1e-2  # λ1
    cfg.MODEL.DFR.LAMBDA_FEAT = 1e-3  # λ2 (Lfd + Lfr)
    cfg.MODEL.DFR.RADIUS = 5  # r of the (2r+1)^2 window, Eq. 3 / 8
    cfg.MODEL.DFR.SIGMA_XY = 6.0  # σ1
    cfg.MODEL.DFR.SIGMA_RGB = 0.5  # σ2 (on the mean/std-normalised image)
    cfg.MODEL.DFR.SIGMA_FEAT = 50.0  # σ3
    cfg.MODEL.DFR.GAMMA = 0.98  # confidence threshold of M, Eq. 7
    cfg.MODEL.DFR.POSITION_STRIDE = 1.0  # S = stride * (x, y) in loss-map pixels
    # Pairwise losses run on the map at this stride of the input (4 = the heads' map).
    cfg.MODEL.DFR.LOSS_STRIDE = 4
    # Loss switches (Table 4) and kernel terms (Table 5).
    cfg.MODEL.DFR.USE_PCE = True
    cfg.MODEL.DFR.USE_DFR = True
    cfg.MODEL.DFR.USE_FD = True
    cfg.MODEL.DFR.USE_FR = True
    cfg.MODEL.DFR.KERNEL_XY = True
    cfg.MODEL.DFR.KERNEL_RGB = True
    cfg.MODEL.DFR.KERNEL_FEAT = True
    # Labels supervising the feature head (Table 7): "M" (Eq. 7) | "scribble" | "both".
    cfg.MODEL.DFR.FEAT_SUPERVISION = "M"
    cfg.MODEL.DFR.FR_PAIRS = "RA"  # Lfr pair set: "RA" (Eq. 12) | "R" (every window pair)
    cfg.MODEL.DFR.BACKGROUND_ID = 0  # class id of background for A+bg / A+fg in Lfd
    # Feature-branch diagnostics (M coverage, |A+bg|/|A+fg|/|A-|, feature norm and dead
    # channels, feature factor of the kernel, mean K) as `diag/*` scalars every N training
    # iterations (0: off); N = 20 = the writers' period, so every metrics.json row has them.
    cfg.MODEL.DFR.DIAG_PERIOD = 20
    # Opt-in changes of the feature branch (defaults = the paper). FEAT_DETACH_FUSED:
    # the feature head reads the fused map without gradient (Lfd / Lfr train the head only).
    # SIGMA_FEAT_RELATIVE > 0: σ3 of each step = this x the batch's mean ‖F(i) - F(j)‖ over
    # window pairs (detached; the batches of all processes under DDP) instead of the fixed
    # SIGMA_FEAT, which stays the value for a batch without window pairs.
    cfg.MODEL.DFR.FEAT_DETACH_FUSED = False
    cfg.MODEL.DFR.SIGMA_FEAT_RELATIVE = 0.0
    # Implementation of the pairwise pass: "auto" (fused Triton kernels on CUDA when they
    # compile, the torch pass otherwise; the choice is logged once), "triton" or "torch".
    cfg.MODEL.DFR.PAIRWISE_IMPL = "auto"

    # ---- Training-time augmentation (mmseg's default pipeline) ----
    cfg.INPUT.DFR = CN()
    cfg.INPUT.DFR.RESIZE_SCALE = [2048, 512]  # (long, short) base scale of random resize
    cfg.INPUT.DFR.RATIO_RANGE = [0.5, 2.0]
    cfg.INPUT.DFR.PHOTOMETRIC = True  # brightness, contrast, saturation, hue (mmseg)
    cfg.INPUT.DFR.FLIP_PROB = 0.5
    # mmseg's test pipeline: resize to RESIZE_SCALE (ratio 1, keep ratio) before inference; the
    # prediction is resized back to the original (height, width). False: original size.
    cfg.INPUT.DFR.TEST_RESIZE = False
    # Crop: INPUT.CROP.{ENABLED,TYPE,SIZE} are Detectron2 keys. SINGLE_CATEGORY_MAX_AREA is one
    # too in newer Detectron2 releases; add it (default 1.0 = off) only where it is missing.
    if "SINGLE_CATEGORY_MAX_AREA" not in cfg.INPUT.CROP:
        cfg.INPUT.CROP.SINGLE_CATEGORY_MAX_AREA = 1.0

    # ---- Optimizer (AdamW, Swin recipe) ----
    cfg.SOLVER.OPTIMIZER = "ADAMW"  # "ADAMW" | "SGD"
    cfg.SOLVER.BETAS = [0.9, 0.999]
    # mmseg's Swin paramwise_cfg: SOLVER.WEIGHT_DECAY_NORM applies to LayerNorm/GroupNorm
    # only (the heads' BatchNorm decays like the weights), WEIGHT_DECAY_EMBED to the
    # absolute/relative position tables; SOLVER.WEIGHT_DECAY_BIAS None = as the module.
    cfg.SOLVER.WEIGHT_DECAY_EMBED = 0.0
    cfg.SOLVER.POLY_LR_POWER = 1.0
    cfg.SOLVER.POLY_LR_CONSTANT_ENDING = 0.0
    # torch.compile of the model's training forward (backbone, heads and criterion):
    # "" = off (eager), else the compile mode ("default", "reduce-overhead", "max-autotune").
    cfg.SOLVER.COMPILE = ""
    # Training guard: stop on a non-finite loss with iteration, loss name and files. A trainer
    # setting, hence under SOLVER; the former key MODEL.DFR.NAN_GUARD is refused naming it.
    cfg.SOLVER.NAN_GUARD = True
    cfg.register_renamed_key("MODEL.DFR.NAN_GUARD", "SOLVER.NAN_GUARD")

    # ---- Mixed precision: SOLVER.AMP.ENABLED is Detectron2's key ----
    # Autocast dtype of the network when SOLVER.AMP.ENABLED: "float16" (with a GradScaler;
    # Detectron2's AMPTrainer default) | "bfloat16" (no scaler; also on CPU). The pairwise
    # losses always run in float32 with autocast off (dfr.modeling.losses).
    if "PRECISION" not in cfg.SOLVER.AMP:
        cfg.SOLVER.AMP.PRECISION = "float16"
    # float16: the run stops (naming the loss terms) after this many consecutive steps the
    # GradScaler skipped for overflowing gradients (a warning comes after 5); 0 = never.
    cfg.SOLVER.AMP.MAX_CONSECUTIVE_SKIPS = 50

    # ---- Inference ----
    cfg.TEST.MODE = "whole"  # "whole" | "slide" (mmseg's sliding window)
    cfg.TEST.SLIDE = CN()
    cfg.TEST.SLIDE.CROP_SIZE = [512, 512]
    cfg.TEST.SLIDE.STRIDE = [341, 341]
    # Multi-scale "ms" inference: TEST.AUG.ENABLED / TEST.AUG.FLIP (Detectron2 keys) + ratios.
    cfg.TEST.AUG.SCALES = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    # Evaluation and the demo resize the logits to the original size this many MB of classes
    # at a time, keeping the best class of each pixel (the same labels; memory independent of
    # the number of classes; dfr.evaluation.postprocess).
    cfg.TEST.RESIZE_CHUNK_MB = 256
    # An image whose inference would need more memory than this (an estimate) is refused by
    # name with the size that would fit. 0: the memory available at that moment (free RAM on
    # a CPU, free GPU memory on CUDA); -1: no check.
    cfg.TEST.MEMORY_LIMIT_MB = 0

    # ---- Your own datasets (README "Train on your own scribbles") ----
    cfg.DATASETS.DFR = CN()
    # dataset.json files (or folders holding one) written by
    # datasets/prepare_custom_scribbles.py; relative entries are under $DETECTRON2_DATASETS.
    # dfr.data.register_datasets_from_cfg registers each: <name>_train (scribbles) and
    # <name>_val (dense labels).
    cfg.DATASETS.DFR.CUSTOM = []
    # Seed of the scribbles simulated for the `<source>_sim_<style>` names of DATASETS.TRAIN /
    # TEST (dfr.data.datasets.simulated; one cached set per seed).
    cfg.DATASETS.DFR.SIMULATION_SEED = 0
    # Sizes of the simulated scribbles: "1.0" (the styles' published pixel constants), another
    # factor in quotes ("'0.5'"), or "auto": lengths x s, areas x s^2 with s from each image's
    # size (2 at 2048 x 1024; dfr.data.scribbles.params). One cached set per scale.
    cfg.DATASETS.DFR.SIMULATION_SCALE = "1.0"
    # Processes that simulate a set when it is first loaded (0: one per core); the maps are
    # the same bytes for any number.
    cfg.DATASETS.DFR.SIMULATION_WORKERS = 0
    # A `<source>_sim_<style>` source must be dense (>= 50 % of its pixels labeled, not a
    # scribble set by its metadata): scribbles simulated from scribbles keep almost nothing.
    # True: simulate from a sparse source anyway (the rare intended case).
    cfg.DATASETS.DFR.SIMULATE_FROM_SPARSE = False


def get_dfr_cfg(config_file=None, opts=(), cpu_fallback=True):
    """Detectron2's defaults + DFR's keys, merged with `config_file` and then `opts`
    (["KEY", "VALUE", ...], as on the command line). With `cpu_fallback`, a CUDA
    MODEL.DEVICE becomes "cpu" on a machine without CUDA. No side effects: the datasets the
    config names are registered by `dfr.data.register_datasets_from_cfg(cfg)`, called by the
    entry points. Returns an unfrozen config."""
    import torch
    from detectron2.config import get_cfg

    cfg = get_cfg()
    add_dfr_config(cfg)
    if config_file:
        cfg.merge_from_file(str(config_file))
    cfg.merge_from_list(list(opts))
    if cpu_fallback and cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        cfg.MODEL.DEVICE = "cpu"
    return cfg

