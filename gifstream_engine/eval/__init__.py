"""Evaluation: a sequence against a capture (PSNR, SSIM, moving pixels, render speed), image metrics, the
motion strip."""
