"""covseg_jax: COVID-19 lung CT segmentation (SegNet, U-Net, HighResNet) in JAX/Flax."""
