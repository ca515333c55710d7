"""`python -m backend <command>`: predict normal maps, describe the model, train, evaluate."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="write normal maps and masks for face photos")
    predict.add_argument("inputs", nargs="+", help="image files or folders of images")
    predict.add_argument("-o", "--output", default="out", help="output folder (default: out)")
    predict.add_argument("--no-detect", action="store_true",
                         help="the inputs are already face crops: skip face detection")
    predict.add_argument("--convention", choices=("opengl", "directx"), default="opengl",
                         help="normal-map convention (directx flips green); default opengl")
    predict.add_argument("--npy", action="store_true", help="also write <stem>_normal.npy (float32 HxWx3)")
    predict.add_argument("--exr", action="store_true", help="also write <stem>_normal.exr (float32)")
    _add_model_options(predict)
    predict.set_defaults(run=run_predict)

    info = commands.add_parser("info", help="describe the model and the device it would run on")
    _add_model_options(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=run_info)

    train = commands.add_parser("train", help="render synthetic pairs and train both networks")
    train.add_argument("--data", required=True, help="the ICT-FaceKit folder")
    train.add_argument("--photos", help="a folder of real face photos for the unpaired path")
    train.add_argument("--output", default="backend/weights/face_normals",
                       help="output path stem (default: the shipped weights' place)")
    train.add_argument("--cache", default=".cache/renders", help="where rendered pairs are kept")
    train.add_argument("--smoke", action="store_true", help="a few steps on a few renders, to check the path")
    _add_settings_options(train)
    train.set_defaults(run=run_train)

    evaluate = commands.add_parser("evaluate", help="angular errors on the held-out test people")
    evaluate.add_argument("--data", required=True, help="the ICT-FaceKit folder")
    evaluate.add_argument("--weights", help="weights file (default: the shipped model)")
    evaluate.add_argument("--ablation", help="no-attention weights (default: shipped beside the model)")
    evaluate.add_argument("--people", type=int, default=200, help="how many test people (default 200)")
    evaluate.add_argument("--sheet", default="out/evaluation_sheet.png", help="contact sheet path")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(run=run_evaluate)

    args = parser.parse_args(argv)
    return args.run(args)


def run_evaluate(args: argparse.Namespace) -> int:
    from .estimator.weights import DEFAULT_WEIGHTS, WeightsError
    from .training.evaluate import evaluate, format_table
    from .training.facekit import FaceKitError

    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    ablation = Path(args.ablation) if args.ablation else weights.with_name(
        weights.stem + "_no_attention.safetensors")
    try:
        report = evaluate(Path(args.data), weights, ablation if ablation.is_file() else None,
                          people=args.people, sheet=Path(args.sheet))
    except (FaceKitError, WeightsError) as error:
        return _fail(str(error))
    if args.json:
        print(json.dumps({"rows": report.rows, "parameters": report.parameters,
                          "people": report.people}, indent=2))
    else:
        print(format_table(report))
        print(f"contact sheet: {args.sheet}")
    return 0


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    import dataclasses

    from .training.train import TrainSettings
    for field in dataclasses.fields(TrainSettings):
        flag = "--" + field.name.replace("_", "-")
        if field.type == "bool":
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, type=type(field.default), default=None,
                                help=f"default {field.default}")


SMOKE = dict(samples=12, rags=8, coarse_steps=2, coarse_batch=4, refine_steps=2, refine_batch=4,
             refine_crop=96, unpaired_every=1)


def run_train(args: argparse.Namespace) -> int:
    import dataclasses

    from .training.facekit import FaceKitError
    from .training.train import TrainSettings, train

    chosen = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSettings)
              if getattr(args, f.name) is not None}
    settings = TrainSettings(**{**(SMOKE if args.smoke else {}), **chosen})
    try:
        report = train(Path(args.data), Path(args.output), Path(args.cache), settings,
                       Path(args.photos) if args.photos else None)
    except FaceKitError as error:
        return _fail(str(error))
    print(json.dumps(report["timings_s"]))
    return 0


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", help="weights file (default: the shipped model)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files as given; folders replaced by the images directly inside them, sorted."""
    paths = []
    for item in map(Path, inputs):
        if item.is_dir():
            paths += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            paths.append(item)
    return paths


def run_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .estimator import Estimator, ImageError, NoFaceError, WeightsError
    from .estimator.image_io import encode_normals, write_exr, write_mask_png, write_normal_png

    paths = expand_inputs(args.inputs)
    if not paths:
        return _fail("no images found in the given folders")
    try:
        estimator = Estimator(args.weights, device=args.device)
    except (WeightsError, ValueError) as error:
        return _fail(str(error))
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    failures = 0
    progress = tqdm(paths, unit="photo", disable=len(paths) < 2, file=sys.stderr)
    for path in progress:
        progress.set_postfix_str(path.name)
        try:
            result = estimator.estimate_file(path, detect=not args.no_detect)
            normals = encode_normals(result.normals, args.convention)
            write_normal_png(output / f"{path.stem}_normal.png", normals)
            write_mask_png(output / f"{path.stem}_mask.png", result.mask)
            if args.npy:
                import numpy as np
                np.save(output / f"{path.stem}_normal.npy", normals)
            if args.exr:
                write_exr(output / f"{path.stem}_normal.exr", normals)
        except (ImageError, NoFaceError) as error:
            failures += 1
            progress.write(f"error: {error if str(path) in str(error) else f'{path}: {error}'}",
                           file=sys.stderr)
            continue
        progress.write(f"{path} -> {output / (path.stem + '_normal.png')} "
                       f"({len(result.faces) or 'no'} face{'s' * (len(result.faces) != 1)} detected"
                       f"{', detection off' if args.no_detect else ''})")
    if failures:
        print(f"{failures} of {len(paths)} inputs failed", file=sys.stderr)
    return 1 if failures else 0


def run_info(args: argparse.Namespace) -> int:
    from .estimator.networks import build_model, count_parameters
    from .estimator.pipeline import pick_device
    from .estimator.weights import DEFAULT_WEIGHTS, WeightsError, read_metadata

    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    try:
        config, provenance = read_metadata(weights)
        device = pick_device(args.device)
    except (WeightsError, ValueError) as error:
        return _fail(str(error))
    report = {"weights": str(weights), "device": str(device),
              "parameters": count_parameters(build_model(config)),
              "config": config.to_dict(), "provenance": provenance}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>11}: {value}")
    return 0


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2
