"""Training settings: what `python -m backend train` exposes as flags (no torch import here)."""
import dataclasses


@dataclasses.dataclass
class TrainSettings:
    samples: int = 6000          # rendered pairs in the cache
    rags: int = 2000             # the small paired set the coarse network sees
    coarse_steps: int = 1500
    coarse_batch: int = 16
    refine_steps: int = 3000
    refine_batch: int = 16
    refine_crop: int = 128       # the refiner is convolutional: it trains on crops, runs on 256^2
    learning_rate: float = 1e-3
    gradient_weight: float = 1.0  # the refiner's detail term (the coarse net learns shape only)
    unpaired_weight: float = 0.1
    unpaired_every: int = 4      # one photo batch every this many refine steps
    threads: int = 2
    seed: int = 0
    ablation: bool = True        # also train the coarse network without attention
