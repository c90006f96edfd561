"""Metrics: LPIPS, mCSD/mOCD, FID, parameters, FPS, and the evaluation entry point (weights: smisbench.weights)."""
