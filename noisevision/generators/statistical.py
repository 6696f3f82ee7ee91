"""Statistical image models (spectrum, colour, wavelet marginals), SPEC §3. (Being written.)"""
