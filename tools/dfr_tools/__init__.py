"""Code the command-line tools share (tools/*.py and datasets/prepare_*.py), apart from the
`dfr` library: training, evaluation and the demo never import it. Installed with the project
(setup.py); a script in tools/ also finds it beside itself.

- `prepare`: data preparation (manifests, id lists, image checks, statistics reports)
- `seed_runs`: seeded train_net.py runs and their statistics (ablation, scribble study)
- `synthetic_pretrain`: the separate synthetic pretraining task's images
- `custom_example`: the example folder of datasets/prepare_custom_scribbles.py --example
"""
