"""Dead leaves (occlusion model), SPEC §2. (Being written.)"""
