"""Training: the GroupDNet/SPADE objective, the trainer (one or many processes), checkpoints that resume
bit for bit. Entry points: ``smisbench train`` and :func:`smisbench.training.trainer.train`."""
