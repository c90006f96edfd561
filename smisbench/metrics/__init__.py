"""Metrics: weights store, LPIPS, mCSD/mOCD, FID, parameters, FPS, and the evaluation entry point."""
