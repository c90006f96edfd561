"""Segmenters for mIoU and pixel accuracy: the paper's networks, an mmsegmentation backend, the protocol.

Entry points: ``registry.load_segmenter`` / ``registry.segmenter_names``, ``protocol.get_protocol``,
``confusion.ConfusionMatrix``, ``score_folder.score_folders`` and the ``smisbench segment`` command.
Modules import torch lazily from here, so ``import smisbench.segmenters`` stays cheap.
"""
