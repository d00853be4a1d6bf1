"""Zero-shot SR: models trained on the test image itself (ZSSR) and kernel estimation (KernelGAN)."""
