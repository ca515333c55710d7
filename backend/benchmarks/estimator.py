"""Speed of the estimator on this machine: `python -m backend.benchmarks.estimator`.

Prints parameters, GMACs and CPU latency per 256^2 crop for each network, both together, and
what `predict` runs per face (the pair on the face crop and on the head-and-shoulders crop, and
the person segmenter on the latter); the same for the authors' released pair, rebuilt here to
time it (pix2pix U-Net-256 coarse generator, VGG13-BN refiner with exemplar-modulated decoder):
the yardstick, measured in the same run; and the whole `predict` time for a 1024^2 photo split
into read, detection, segmentation, networks and write.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
import typing
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..estimator import models
from ..estimator.networks import FaceNormalNet, count_macs, count_parameters, mirror_averaged
from ..estimator.pipeline import crop_sides
from ..estimator.weights import DEFAULT_WEIGHTS, load_model


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


class ModulatedConv(nn.Module):
    """StyleGAN2's modulated 3x3 convolution (weights scaled per sample by a style, then
    demodulated), run as one grouped convolution over the batch."""

    def __init__(self, c_in: int, c_out: int, style: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3) * 0.05)
        self.affine = nn.Linear(style, c_in)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        weight = self.weight[None] * self.affine(style)[:, None, :, None, None]
        weight = weight * torch.rsqrt(weight.pow(2).sum((2, 3, 4), keepdim=True) + 1e-8)
        out = F.conv2d(x.reshape(1, b * c, h, w), weight.reshape(-1, c, 3, 3), padding=1, groups=b)
        return F.leaky_relu(out.reshape(b, -1, h, w), 0.2)


class AuthorsRefiner(nn.Module):
    """The authors' refinement network as released, rebuilt to time it: a VGG13-BN encoder on the
    RGB face, a decoder whose convolutions are modulated by a 256-d code pooled from the exemplar,
    skips from the encoder; ~22M parameters."""

    def __init__(self, style: int = 256):
        super().__init__()
        widths = [64, 128, 256, 512, 512]
        c_in = 3
        self.encoder = nn.ModuleList()
        for width in widths:
            block = [nn.Conv2d(c_in, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU(),
                     nn.Conv2d(width, width, 3, 1, 1), nn.BatchNorm2d(width), nn.ReLU()]
            self.encoder.append(nn.Sequential(*block))
            c_in = width
        self.style = nn.Sequential(nn.Conv2d(3, 64, 4, 4), nn.ReLU(), nn.Conv2d(64, style, 4, 4), nn.ReLU(),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten())
        ups = [(512, 512, 512), (512, 256, 256), (256, 128, 128), (128, 64, 64)]
        self.decoder = nn.ModuleList()
        for c_low, c_skip, c_out in ups:
            self.decoder.append(nn.ModuleList([ModulatedConv(c_low + c_skip, c_out, style),
                                               ModulatedConv(c_out, c_out, style)]))
        self.head = nn.Conv2d(64, 3, 1)

    def forward(self, image: torch.Tensor, exemplar: torch.Tensor) -> torch.Tensor:
        style = self.style(exemplar)
        skips, x = [], image
        for i, block in enumerate(self.encoder):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        x = skips.pop()
        for pair, skip in zip(self.decoder, reversed(skips)):
            first, second = typing.cast(nn.ModuleList, pair)
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = second(first(torch.cat([x, skip], 1), style), style)
        return torch.tanh(self.head(x))


class AuthorsPair(nn.Module):
    """Their coarse generator (gray input) then their refiner, per 256^2 face."""

    def __init__(self):
        super().__init__()
        self.coarse, self.refine = pix2pix_unet256(), AuthorsRefiner()

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        exemplar = self.coarse(image.mean(1, keepdim=True))
        return self.refine(image, exemplar)


class AsPredictRuns(nn.Module):
    """What `predict` runs per face: the pair on the face crop and the head-and-shoulders crop
    (one batch), the person segmenter on the latter; optionally mirror-averaged."""

    def __init__(self, model: nn.Module, mirror: bool = False):
        super().__init__()
        from ..estimator.segmentation import PersonSegmenter
        self.model, self.mirror = model, mirror
        self.segmenter = PersonSegmenter().model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        crops = torch.cat([image, image])
        normals = mirror_averaged(self.model, crops) if self.mirror else self.model(crops)
        self.segmenter(image)
        return normals


class V3PerFace(nn.Module):
    """What `predict` runs per face with a v3 size: the network on its three crops (face, head and
    shoulders, upper body) at the sides the pipeline cuts them (crops of one side in one batch:
    pipeline.crop_sides), the person segmenter on the last two.  Untrained weights: the cost does
    not depend on them."""

    def __init__(self, name: str):
        super().__init__()
        from ..estimator.segmentation import PersonSegmenter
        self.model = models.create_model(name).eval()
        self.segmenter = PersonSegmenter().model
        self.sides = crop_sides(self.model)

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        self.segmenter(torch.cat([image] * (len(self.sides) - 1)))
        return [self.model(torch.cat([F.interpolate(image, size=(side, side), mode="bilinear", align_corners=False)]
                                     * self.sides.count(side)))["normals"]
                for side in sorted(set(self.sides))]


def network_table(model: FaceNormalNet, repeats: int) -> list[tuple[str, int, float, float]]:
    image = torch.rand(1, 3, 256, 256)
    with torch.inference_mode():
        exemplar = model.coarse(image)
        rows = [
            ("coarse (exemplar)", model.coarse, (image,)),
            ("refine", model.refine, (image, exemplar)),
            ("both, one crop", model, (image,)),
            ("predict, per face", AsPredictRuns(model), (image,)),
            ("predict, mirror-averaged", AsPredictRuns(model, mirror=True), (image,)),
            ("v3 fast, per face", V3PerFace("fast").eval(), (image,)),
            ("v3 quality, per face", V3PerFace("quality").eval(), (image,)),
            ("authors' coarse generator", pix2pix_unet256().eval(), (torch.rand(1, 1, 256, 256),)),
            ("authors' refiner", AuthorsRefiner().eval(), (image, image)),
            ("authors' pair", AuthorsPair().eval(), (image,)),
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

    from ..core.encoding import mask_from_uint8
    from ..core.options import EstimateOptions
    from ..estimator import Estimator, Photo
    from ..estimator.image_io import write_mask_png, write_normal_png

    estimator = Estimator(weights, device="cpu")
    photo = cv2.resize(data.astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)
    steps: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "portrait.jpg"
        cv2.imwrite(str(source), photo[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        for _ in range(repeats + 1):
            # what `predict` asks for
            [result] = estimator.estimate([Photo(source, EstimateOptions(normals_dtype="float32"))])
            assert result.normals is not None and result.mask is not None
            start = time.perf_counter()
            write_normal_png(Path(folder) / "portrait_normal.png", result.normals)
            write_mask_png(Path(folder) / "portrait_mask.png", mask_from_uint8(result.mask))
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
    times = {name: ms for name, _params, _gmacs, ms in table}
    ours, authors = times["predict, per face"], times["authors' pair"]
    print(f"what predict runs per face takes {ours / authors:.3f} of the authors' pair's time on one "
          f"face ({authors / ours:.1f}x faster; target: at most 0.1)")
    for size, target in (("fast", 0.1), ("quality", 1.0)):
        sides = " + ".join(f"{side}^2" for side in crop_sides(models.create_model(size)))
        print(f"v3 {size} per face (crops {sides}): {times[f'v3 {size}, per face'] / authors:.3f} of the "
              f"authors' pair (target: at most {target})")

    print(f"\n{'predict, 1024x1024 JPEG':<28}{'ms':>9}")
    for step, seconds in predict_breakdown(weights_file, max(3, args.repeats // 4)).items():
        print(f"{step:<28}{seconds * 1000:>9.1f}")


if __name__ == "__main__":
    main()
