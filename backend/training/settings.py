"""Training settings: what `python -m backend train` exposes as flags (no torch import here)."""
import dataclasses


@dataclasses.dataclass
class TrainSettings:
    samples: int = 8000          # rendered pairs in the cache
    rags: int = 6000             # the small paired set the coarse network sees (4,000 were memorised
                                 # in 12,000 steps: 10.6 deg on seen renders, 13.5 on unseen)
    coarse_steps: int = 14000    # ~50 min at 4.7 steps/s on a 2-core AVX-512 BF16 CPU
    coarse_batch: int = 8        # in equal time, 8 x 1200 steps beat 16 x 600 (18.9 vs 20.3 deg)
    augment: bool = True         # new exposure, colour, zoom and shift for the coarse net each pass
                                 # (closed that gap: 13.8 seen vs 13.7 unseen)
    refine_steps: int = 500      # its loss is flat after ~150 (400 steps scored as 1,500 did)
    refine_batch: int = 16
    refine_crop: int = 128       # the refiner is convolutional: it trains on crops, runs on 256^2
    learning_rate: float = 1e-3
    gradient_weight: float = 0.2  # the refiner's detail term (the coarse net learns shape only); at 1.0
                                 # it outweighed the angular term 4:1 and the refiner chased pore noise
    unpaired_weight: float = 0.1
    unpaired_every: int = 4      # one photo batch every this many refine steps
    consistency_weight: float = 0.5  # real photos: the same photo mirrored, rescaled, shifted,
                                 # recompressed and recoloured must give the same normals
    consistency_every: int = 2   # one real batch every this many coarse steps
    checkpoint_every: int = 250  # steps between the checkpoints `--resume` continues from
    threads: int = 2
    bf16: bool = True            # bfloat16 autocast: steps ~1.7x faster on CPUs with bf16 units (AMX,
                                 # AVX512-BF16); ignored on CPUs without them
    seed: int = 0
    ablation: bool = True        # also train the coarse network without attention
