"""Install the `dfr` package (projects/DFR/dfr) and the tools' shared code `dfr_tools`
(tools/dfr_tools). Heavy dependencies: see requirements.txt and
tools/install.sh (detectron2 needs tools/install_detectron2.sh or the official git install)."""
from setuptools import find_packages, setup

setup(
    name="dfr",
    version="0.1.0",
    description="Dynamic Feature Regularized Loss for weakly supervised semantic segmentation "
    "(Detectron2 project)",
    # dfr: the library (training, evaluation, demo); dfr_tools: what the tools/ and datasets/
    # scripts share, kept with the tools.
    package_dir={"": "projects/DFR", "dfr_tools": "tools/dfr_tools"},
    packages=find_packages(where="projects/DFR", include=["dfr", "dfr.*"])
    + ["dfr_tools." + p for p in find_packages(where="tools/dfr_tools")]
    + ["dfr_tools"],
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.1",
        "torchvision",
        # The Swin backbone overrides timm's private SwinTransformerBlock._attn: only the
        # releases it was tested with (dfr/modeling/backbone/swin.py TIMM_TESTED).
        "timm>=1.0.15,<=1.0.31",
        "fvcore",
        "pycocotools",
        "numpy<2",
        "opencv-python-headless",
        "scikit-image",
        "safetensors",
        "tqdm",
    ],
    # pip install -e .[cluster]: tools/submit_slurm.py (SLURM jobs with requeue on preemption)
    extras_require={"cluster": ["submitit>=1.5"]},
    include_package_data=True,
)
