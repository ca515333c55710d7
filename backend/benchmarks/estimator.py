"""Speed of the estimator on this machine: `python -m backend.benchmarks.estimator`.

Prints parameters, GMACs and CPU latency per 256^2 face for each network, both together and both
as `predict` runs them (on the face and its mirror image); the same for the authors' released
coarse generator (pix2pix U-Net-256) as the yardstick; and the whole `predict` time for a 1024^2
photo split into read, detection, networks and write.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from ..estimator.networks import FaceNormalNet, count_macs, count_parameters, mirror_averaged
from ..estimator.weights import DEFAULT_WEIGHTS, load_model


AUTHORS_PAIR_MS = 620.0  # their pix2pix coarse + VGG13-BN refine pair, per 256^2 face


def latency_ms(fn, repeats: int, warmup: int = 3) -> float:
    """Median wall time of fn() in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def pix2pix_unet256(ngf: int = 64) -> nn.Module:
    """The authors' coarse generator (pix2pix 'unet_256': 8 down/up levels, BatchNorm, dropout),
    gray input, as released: ~54M parameters.  Built here only to time it."""
    def down(c_in, c_out, norm=True):
        layers = [nn.LeakyReLU(0.2), nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False)]
        return nn.Sequential(*layers, nn.BatchNorm2d(c_out)) if norm else nn.Sequential(*layers)

    def up(c_in, c_out, last=False):
        layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=last)]
        return nn.Sequential(*layers, nn.Tanh() if last else nn.BatchNorm2d(c_out))

    widths = [ngf, ngf * 2, ngf * 4, ngf * 8, ngf * 8, ngf * 8, ngf * 8, ngf * 8]

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.first = nn.Conv2d(1, ngf, 4, 2, 1)
            self.downs = nn.ModuleList(down(a, b, norm=i < 6) for i, (a, b) in
                                       enumerate(zip(widths[:-1], widths[1:])))
            ups = [up(widths[-1], widths[-2])]
            for i in range(len(widths) - 2, 0, -1):
                ups.append(up(widths[i] * 2, widths[i - 1]))
            self.ups = nn.ModuleList(ups)
            self.last = up(ngf * 2, 3, last=True)

        def forward(self, x):
            skips = [self.first(x)]
            for layer in self.downs:
                skips.append(layer(skips[-1]))
            x = self.ups[0](skips.pop())
            for layer in self.ups[1:]:
                x = layer(torch.cat([x, skips.pop()], 1))
            return self.last(torch.cat([x, skips.pop()], 1))

    return UNet()


class MirrorAveraged(nn.Module):
    """The pair as `predict` runs it (networks.mirror_averaged), as a module to count and time."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return mirror_averaged(self.model, image)


def network_table(model: FaceNormalNet, repeats: int) -> list[tuple[str, int, float, float]]:
    image = torch.rand(1, 3, 256, 256)
    with torch.inference_mode():
        exemplar = model.coarse(image)
        rows = [
            ("coarse (exemplar)", model.coarse, (image,)),
            ("refine", model.refine, (image, exemplar)),
            ("both", model, (image,)),
            ("both, mirror-averaged", MirrorAveraged(model), (image,)),
            ("authors' coarse generator", pix2pix_unet256().eval(), (torch.rand(1, 1, 256, 256),)),
        ]
        table = []
        for name, net, inputs in rows:
            ms = latency_ms(lambda net=net, inputs=inputs: net(*inputs), repeats)
            table.append((name, count_parameters(net), count_macs(net, *inputs) / 1e9, ms))
    return table


def predict_breakdown(weights: Path | None, repeats: int) -> dict[str, float]:
    """Median seconds per step of `predict` on a 1024^2 portrait (the astronaut, upscaled)."""
    import cv2
    from skimage import data

    from ..estimator import Estimator
    from ..estimator.image_io import write_mask_png, write_normal_png

    estimator = Estimator(weights, device="cpu")
    photo = cv2.resize(data.astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    steps: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "portrait.jpg"
        cv2.imwrite(str(source), photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        for _ in range(repeats + 1):
            result = estimator.estimate_file(source)
            start = time.perf_counter()
            write_normal_png(Path(folder) / "portrait_normal.png", result.normals)
            write_mask_png(Path(folder) / "portrait_mask.png", result.mask)
            timings = {**result.timings, "write": time.perf_counter() - start}
            timings["total"] = sum(timings.values())
            for key, value in timings.items():
                steps.setdefault(key, []).append(value)
    return {key: statistics.median(values[1:]) for key, values in steps.items()}  # first is warm-up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--weights", type=Path, help="weights file (default: the shipped model)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    weights_file = args.weights or DEFAULT_WEIGHTS
    model = load_model(weights_file)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} threads, CPU; weights: {weights_file}")
    print(f"\n{'network (256x256 face)':<28}{'params':>12}{'GMACs':>8}{'ms':>9}")
    table = network_table(model, args.repeats)
    for name, params, gmacs, ms in table:
        print(f"{name:<28}{params:>12,}{gmacs:>8.2f}{ms:>9.1f}")
    ours, authors = table[3][3], table[4][3]   # as `predict` runs it
    print(f"ours is {authors / ours:.1f}x faster than the authors' coarse generator alone, and "
          f"{AUTHORS_PAIR_MS / ours:.1f}x faster than their released pair ({AUTHORS_PAIR_MS:.0f} ms "
          f"measured on the 2-core project machines, torch 2.13, 2 threads)")

    print(f"\n{'predict, 1024x1024 JPEG':<28}{'ms':>9}")
    for step, seconds in predict_breakdown(weights_file, max(3, args.repeats // 4)).items():
        print(f"{step:<28}{seconds * 1000:>9.1f}")


if __name__ == "__main__":
    main()
