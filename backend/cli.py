"""`python -m backend <command>`: predict normal maps, describe the model, train, evaluate."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

class _Parser(argparse.ArgumentParser):
    """A usage mistake is one `error:` line and exit status 1, like every other user error."""

    def error(self, message: str):
        self.exit(1, f"error: {message} (see `{self.prog} --help`)\n")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m backend", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    predict = commands.add_parser("predict", help="write normal maps and masks for face photos")
    predict.add_argument("inputs", nargs="+", help="image files or folders of images")
    predict.add_argument("-o", "--output", default="out", help="output folder (default: out)")
    _add_output_options(predict)
    predict.add_argument("--json", action="store_true",
                         help="print one JSON object per photo on stdout (JSON Lines: photo, "
                              "outputs, faces with box, roll, score and named landmarks, warnings such as "
                              "no person in the image; or error); "
                              "the progress lines then go to stderr")
    predict.add_argument("--server", help="send the work to a running server at this address "
                                          "(e.g. tcp://127.0.0.1:5555) instead of loading the model")
    predict.add_argument("--timeout", type=float, default=60.0,
                         help="with --server: seconds to wait for a photo (default 60)")
    _add_model_options(predict)
    _add_key_options(predict)
    predict.set_defaults(run=run_predict)

    batch = commands.add_parser("batch", help="estimate many photos, folders, lists, videos or image "
                                              "sequences: resumable, on all cores or a Ray cluster")
    batch.add_argument("inputs", nargs="+", help="photos, folders, .txt lists of paths, videos, or "
                                                 "image-sequence patterns (plate.%%04d.exr, frame_####.png)")
    batch.add_argument("-o", "--output", required=True,
                       help="output folder (its manifest.jsonl lets a second run skip what is done)")
    _add_output_options(batch)
    _add_model_options(batch)
    batch.add_argument("--workers", type=_positive_int,
                       help="worker processes (default: the cores / --threads; one on a GPU)")
    batch.add_argument("--threads", type=_positive_int, default=2,   # batch.local.THREADS
                       help="torch threads per worker (default 2)")
    batch.add_argument("--batch-size", type=_positive_int,
                       help="photos a worker puts through the networks together (default 8 on a GPU, else 2)")
    batch.add_argument("--no-smooth", action="store_true",
                       help="videos and sequences: cut each frame's crops from its own detection "
                            "(default: faces tracked, landmarks smoothed over time)")
    batch.add_argument("--fps", type=float, help="frame rate of image sequences (default: 24; videos: their own)")
    batch.add_argument("--preview", action="store_true",
                       help="also write each video's or sequence's normal maps as <name>_normal_preview.mp4")
    batch.add_argument("--shard", type=_shard, metavar="K/N",
                       help="do only the K-th of N slices of the inputs (render farms: the same "
                            "command with K = 1..N on N machines, into one shared output folder)")
    batch.add_argument("--ray", metavar="auto|ADDRESS",
                       help="run on a Ray cluster (pip install face-normals[ray]): auto finds one "
                            "(or starts one here), or give the head's address")
    batch.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    batch.set_defaults(run=run_batch)

    info = commands.add_parser("info", help="describe the model and the device it would run on")
    _add_model_options(info)
    info.add_argument("--server", help="ask a running server at this address instead")
    info.add_argument("--json", action="store_true", help="print JSON")
    _add_key_options(info)
    info.set_defaults(run=run_info)

    serve = commands.add_parser("serve", help="serve the estimator over ZeroMQ")
    serve.add_argument("--bind", default="tcp://127.0.0.1:5555", help="address (default tcp://127.0.0.1:5555)")
    serve.add_argument("--curve-secret", help="the server's secret key file (needed off loopback)")
    serve.add_argument("--curve-clients", help="folder of the public keys of admitted clients")
    serve.add_argument("--idle-timeout", type=float, help="stop after this many seconds without requests")
    serve.add_argument("--max-batch", type=int, default=8, help="images put through the network at once")
    serve.add_argument("--state-file", help="where to write address/pid (default ~/.cache/face-normals/servers/)")
    serve.add_argument("--limit", action="append", default=[], type=_limit, metavar="NAME=N",
                       help="change one of the limits `info` announces, e.g. max_images=8 (repeatable)")
    _add_model_options(serve)
    serve.set_defaults(run=run_serve)

    keys = commands.add_parser("keys", help="make a CURVE key pair (NAME.key, NAME.key_secret)")
    keys.add_argument("folder")
    keys.add_argument("--name", default="server", help="file name stem (default server)")
    keys.set_defaults(run=run_keys)

    train = commands.add_parser("train", help="render synthetic pairs and train both networks")
    train.add_argument("--data", help="the ICT-FaceKit folder (needed unless --recipe is given)")
    train.add_argument("--recipe", choices=("gpu", "cpu", "tiny"),
                       help="train the v3 models (fast and quality) by a prepared recipe: renders, "
                            "trains, evaluates and writes everything into --output (a folder); gpu: "
                            "the ~9-minute run for one large GPU; cpu: 256^2 crops, stopped after 110 "
                            "minutes (--resume continues); tiny: the same path in seconds")
    train.add_argument("--inputs", help="with --recipe: the folder tools/pack_training_inputs.py wrote "
                                        "(the head model and the packed portraits)")
    train.add_argument("--minutes", type=float, help="with --recipe: stop training after this many minutes "
                       "(default: the recipe's guard); 0 with --resume writes and evaluates the last checkpoints")
    train.add_argument("--photos", help="a folder of real face photos for the unpaired path")
    train.add_argument("--portraits", help="the real portrait folder (../shared/data/portraits): its "
                       "training side of the fixed split joins the unpaired path")
    train.add_argument("--init", help="start the coarse network from this weights file (both stages run)")
    train.add_argument("--resume", action="store_true",
                       help="continue from <output>_checkpoint.pt after an interruption")
    train.add_argument("--output", default="backend/weights/face_normals",
                       help="output path stem (default: the shipped weights' place)")
    train.add_argument("--cache", default=".cache/renders", help="where rendered pairs are kept")
    train.add_argument("--smoke", action="store_true", help="a few steps on a few renders, to check the path")
    train.add_argument("--coarse-from", help="take the coarse network from this weights file and train "
                                             "the refiner only (e.g. on your own --photos)")
    _add_settings_options(train)
    train.set_defaults(run=run_train)

    evaluate = commands.add_parser("evaluate", help="angular errors on the held-out test people; "
                                                    "consistency on held-out real portraits")
    evaluate.add_argument("--data", help="the ICT-FaceKit folder: errors on the synthetic test people "
                                         "(needed unless --portraits is given)")
    evaluate.add_argument("--weights", help="weights file (default: the shipped model)")
    evaluate.add_argument("--ablation", help="no-attention weights (default: shipped beside the model)")
    evaluate.add_argument("--people", type=int, default=200, help="how many test people (default 200)")
    evaluate.add_argument("--sheet", default="out/evaluation_sheet.png", help="contact sheet path")
    evaluate.add_argument("--portraits", help="the real portrait folder (../shared/data/portraits): "
                                              "consistency under mirror, JPEG, half size and shift on "
                                              "its held-out photos (backend/training/portraits)")
    evaluate.add_argument("--portrait-sheet", default="out/portrait_sheet.png",
                          help="with --portraits: contact sheet of 24 held-out portraits "
                               "(default out/portrait_sheet.png)")
    evaluate.add_argument("--previous", help="also score this earlier model in the same run, on the "
                                             "synthetic people and the portraits (default: backend/weights/"
                                             "face_normals_previous.safetensors of a source checkout; "
                                             "the wheel does not ship it)")
    evaluate.add_argument("--models", nargs="+", default=[],
                          help="also these v3 weights files or v3 names (fast, quality), beside the "
                               "shipped model: with --data the v3 rows (sharpness, albedo, lighting, "
                               "pigment, cost), with --portraits their consistency rows")
    evaluate.add_argument("--v3-people", type=int, default=40, help="test people of the v3 rows (default 40)")
    evaluate.add_argument("--v3-size", type=int, default=512, help="render side of the v3 rows (default 512)")
    evaluate.add_argument("--json", action="store_true", help="print JSON")
    evaluate.set_defaults(run=run_evaluate)

    args = parser.parse_args(argv)
    return args.run(args)


def run_evaluate(args: argparse.Namespace) -> int:
    from .estimator.weights import DEFAULT_WEIGHTS, WeightsError
    from .training.evaluate import evaluate, format_table
    from .training.facekit import FaceKitError

    if not args.data and not args.portraits:
        return _fail("give --data (the synthetic test people), --portraits (held-out real portraits) or both")
    weights = Path(args.weights) if args.weights else DEFAULT_WEIGHTS
    ablation = Path(args.ablation) if args.ablation else weights.with_name(
        weights.stem + "_no_attention.safetensors")
    previous: Path | None = Path(args.previous) if args.previous else DEFAULT_WEIGHTS.with_name(
        "face_normals_previous.safetensors")
    if not args.previous and not (previous and previous.is_file()):
        previous = None
    output: dict = {}
    if args.data:
        try:
            report = evaluate(Path(args.data), weights, ablation if ablation.is_file() else None,
                              people=args.people, sheet=Path(args.sheet), previous=previous)
        except (FaceKitError, WeightsError) as error:
            return _fail(str(error))
        output = {"rows": report.rows, "parameters": report.parameters, "people": report.people}
        if not args.json:
            print(format_table(report))
            print(f"contact sheet: {args.sheet}")
        if args.models:
            from .estimator import models
            from .training.intrinsic_evaluation import evaluate_models, format_rows

            named = {"shipped model": weights, **{name: models.weights_path(name) if name in models.SIZES
                                                  else Path(name) for name in args.models}}
            try:
                output["v3"] = evaluate_models(named, Path(args.data), people=args.v3_people, size=args.v3_size)
            except WeightsError as error:
                return _fail(str(error))
            if not args.json:
                print(format_rows(output["v3"]))
    if args.portraits:
        from .training.consistency import evaluate_portraits, format_portrait_table
        from .training.portraits import PortraitSplitError

        try:
            portraits = evaluate_portraits(Path(args.portraits), weights, previous, v3=args.models,
                                           sheet=Path(args.portrait_sheet), progress=sys.stderr.isatty())
        except (PortraitSplitError, WeightsError) as error:
            return _fail(str(error))
        output["portraits"] = portraits.to_json()
        if not args.json:
            if args.data:
                print()
            print(format_portrait_table(portraits))
            print(f"portrait sheet: {portraits.sheet}")
    if args.json:
        print(json.dumps(output, indent=2))
    return 0


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    import dataclasses

    from .training.settings import TrainSettings
    for field in dataclasses.fields(TrainSettings):
        flag = "--" + field.name.replace("_", "-")
        if field.type in (bool, "bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            parser.add_argument(flag, type=type(field.default), default=None,
                                help=f"default {field.default}")


SMOKE = dict(samples=12, rags=8, coarse_steps=2, coarse_batch=4, refine_steps=2, refine_batch=4,
             refine_crop=96, unpaired_every=1)


def run_train(args: argparse.Namespace) -> int:
    import dataclasses

    from .estimator.weights import WeightsError
    from .training.facekit import FaceKitError
    from .training.settings import TrainSettings
    from .training.portraits import PortraitSplitError
    from .training.train import TrainingDataError, train

    if args.recipe:
        return run_recipe(args)
    if not args.data:
        return _fail("give --data (the ICT-FaceKit folder), or --recipe with --inputs")
    chosen = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainSettings)
              if getattr(args, f.name) is not None}
    settings = TrainSettings(**{**(SMOKE if args.smoke else {}), **chosen})
    _log_to_stdout()
    try:
        report = train(Path(args.data), Path(args.output), Path(args.cache), settings,
                       Path(args.photos) if args.photos else None,
                       coarse_from=Path(args.coarse_from) if args.coarse_from else None,
                       portraits=Path(args.portraits) if args.portraits else None,
                       init=Path(args.init) if args.init else None, resume=args.resume)
    except (FaceKitError, WeightsError, TrainingDataError, PortraitSplitError) as error:
        return _fail(str(error))
    print(json.dumps(report["timings_s"]))
    return 0


def run_recipe(args: argparse.Namespace) -> int:
    from .training.facekit import FaceKitError
    from .training.intrinsic_training import train_intrinsic
    from .training.train import TrainingDataError

    if not args.inputs:
        return _fail("--recipe needs --inputs (the folder tools/pack_training_inputs.py wrote)")
    _log_to_stdout()
    try:
        report = train_intrinsic(args.recipe, Path(args.inputs), Path(args.output), resume=args.resume,
                                 minutes=args.minutes)
    except (FaceKitError, TrainingDataError) as error:
        return _fail(str(error))
    print(json.dumps(report["timings_s"]))
    return 0


def _add_output_options(parser: argparse.ArgumentParser) -> None:
    """What to estimate and which files to write: predict's and batch's flags, defined once."""
    parser.add_argument("--no-detect", action="store_true",
                        help="the inputs are already face crops: skip face detection")
    parser.add_argument("--convention", choices=("opengl", "directx"), default="opengl",
                        help="normal-map convention (directx flips green); default opengl")
    parser.add_argument("--npy", action="store_true", help="also write <stem>_normal.npy (float32 HxWx3)")
    parser.add_argument("--exr", action="store_true",
                        help="also write the float maps as 32-bit EXR (<stem>_normal.exr, and "
                             "_albedo.exr, _height.exr when those are asked for) and all maps in one "
                             "multilayer <stem>.exr (layers normal, albedo, height, mask)")
    parser.add_argument("--outputs", type=_outputs, default=("normal", "mask"),
                        help="what to write, comma-separated, of normal, mask, albedo (16-bit sRGB "
                             "PNG of the linear albedo), height (16-bit PNG; its range in --json), "
                             "light (<stem>_light.json: SH and direction); default normal,mask")
    parser.add_argument("--focal-mm", type=_focal_length,
                        help="the photos' focal length, 35 mm equivalent: normals in camera space "
                             "(without it each face's are relative to the line of sight to it)")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", help="weights file (default: the shipped model)")
    parser.add_argument("--model", choices=("auto", "fast", "quality"), default="auto",
                        help="a v3 model size: fast (for CPUs) or quality (for GPUs), its weights --weights "
                             "or the shipped ones (an error until v3 weights ship: docs/training.md); auto "
                             "(default): the size for the device once they ship; the 8th model until then, "
                             "and whenever --weights is given without a size")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N")


def _add_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server-key", help="the server's public key file (CURVE servers only)")
    parser.add_argument("--client-key", help="this client's secret key file (CURVE servers only)")


def _client(args: argparse.Namespace, timeout: float):
    from .client import Client
    return Client(args.server, timeout=timeout, server_public_key=args.server_key,
                  client_keys=args.client_key)


def _limit(text: str) -> tuple[str, int]:
    import dataclasses

    from .client.protocol import Limits
    names = [f.name for f in dataclasses.fields(Limits)]
    name, _, value = text.partition("=")
    if name not in names or not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=N with N >= 1 and NAME one of "
                                         f"{', '.join(names)}")
    return name, int(value)


def _focal_length(text: str) -> float:
    from .core import frames
    try:
        return frames.check_focal(float(text))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def run_predict(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .client import ServerError
    from .core.files import expand_inputs
    from .estimator import PhotoError, WeightsError
    from .estimator.output_files import write_result

    paths = expand_inputs(args.inputs)
    if not paths:
        return _fail("no images found in the given folders")
    output = Path(args.output)
    try:
        output.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return _fail(f"the output {output} is a file, not a folder")
    except OSError as error:
        return _fail(f"cannot create the output folder {output}: {error.strerror or error}")
    options = _estimate_options(args)
    try:
        estimate = _remote_estimator(args, options) if args.server else _local_estimator(args, options)
    except (WeightsError, ValueError, ServerError) as error:
        return _fail(str(error))

    failures = 0
    progress = tqdm(paths, unit="photo", disable=len(paths) < 2, file=sys.stderr)
    report = sys.stderr if args.json else sys.stdout
    for path in progress:
        progress.set_postfix_str(path.name)
        try:
            result, summary = estimate(path)
            files = write_result(result, output, path.stem, npy=args.npy, exr=args.exr)
        except (PhotoError, ServerError, OSError, ValueError) as error:
            failures += 1
            message = str(error) if str(path) in str(error) else f"{path}: {error}"
            progress.write(f"error: {message}", file=sys.stderr)
            if args.json:
                print(json.dumps({"photo": str(path), "error": message}), flush=True)
            continue
        faces = len(summary["face_details"])
        progress.write(f"{path} -> {next(iter(files.values()))} ({faces or 'no'} face{'s' * (faces != 1)} "
                       f"detected{', detection off' if args.no_detect else ''})", file=report)
        for warning in summary.get("warnings", []):
            progress.write(f"warning: {path}: {warning}", file=sys.stderr)
        if args.json:
            line = {"photo": str(path), **{name: str(file) for name, file in files.items()},
                    "faces": summary["face_details"], "warnings": summary.get("warnings", [])}
            if "height_range" in summary:     # the height PNG's 0..65535 in pixels (the light is in its file)
                line["height_range"] = summary["height_range"]
            print(json.dumps(line), flush=True)
    if failures:
        print(f"{failures} of {len(paths)} inputs failed", file=sys.stderr)
    return 1 if failures else 0


def run_batch(args: argparse.Namespace) -> int:
    from .batch import InputError, Settings, read_units, shard
    from .batch.local import BatchError, LocalPool, default_workers, photos_per_pass
    from .batch.run import Executor, run_batch as run
    from .batch.video import VideoError, frame_count
    from .estimator import models
    from .estimator.pipeline import pick_device

    try:
        device = pick_device(args.device)
        size = models.pick(args.model, device, weights_given=bool(args.weights))
        units = read_units(args.inputs, frame_count=frame_count)
    except (InputError, VideoError, ValueError) as error:
        return _fail(str(error))
    if args.shard:
        units = shard(units, *args.shard)
    gpu = device.type == "cuda"
    settings = Settings(str(Path(args.output).resolve()), _estimate_options(args), npy=args.npy, exr=args.exr,
                        weights=str(Path(args.weights).resolve()) if args.weights else None,
                        model=size or "shipped", device=args.device, threads=0 if gpu else args.threads,
                        photos_per_pass=args.batch_size or photos_per_pass(gpu), smooth=not args.no_smooth,
                        fps=args.fps)
    if args.ray:
        try:
            from .batch.ray_cluster import RayPool
        except ImportError as error:
            return _fail(f"--ray needs Ray: pip install face-normals[ray] ({error})")
        executor: Executor = RayPool(settings, args.ray, workers=args.workers)
    else:
        executor = LocalPool(settings, args.workers or default_workers(gpu, args.threads))
    try:
        summary = run(units, settings, executor, preview=args.preview, progress=True)
    except (BatchError, OSError) as error:
        return _fail(str(error))
    print(json.dumps(summary.to_json(), indent=1) if args.json else summary.text(), flush=True)
    if summary.interrupted:
        return 130
    return 1 if summary.failed else 0


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of 1 or more")
    return int(text)


def _shard(text: str) -> tuple[int, int]:
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise argparse.ArgumentTypeError(f"{text!r}: expected K/N with 1 <= K <= N, e.g. 2/8")
    return int(index), int(count)


def _estimate_options(args: argparse.Namespace):
    """The EstimateOptions of the output flags: float32 normals in the asked convention, from the
    model here or from a server alike."""
    from .core.options import EstimateOptions
    return EstimateOptions(detect=not args.no_detect, convention=args.convention,
                           normals_dtype="float32", focal_35mm=args.focal_mm, outputs=args.outputs)


def _outputs(text: str) -> tuple[str, ...]:
    from .core.options import EstimateOptions, OptionError
    try:
        return EstimateOptions(outputs=tuple(name.strip() for name in text.split(","))).maps
    except OptionError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _local_estimator(args: argparse.Namespace, options):
    """path -> (Result, its summary as the service gives it), with the model loaded here
    (PhotoError when the photo fails)."""
    from .estimator import Estimator, Photo
    estimator = Estimator(args.weights, device=args.device, model=args.model)

    def estimate(path: Path):
        [result] = estimator.estimate([Photo(path, options)])
        if result.error is not None:
            raise result.error
        return result, result.summary()
    return estimate


def _remote_estimator(args: argparse.Namespace, options):
    """The same, computed by a running server.  The file's bytes travel as they are: the server
    decodes them."""
    from .client import ServerError
    from .core.encoding import mask_to_uint8
    from .estimator import Result
    from .estimator.intrinsics import Light
    client = _client(args, timeout=10.0)
    client.info(timeout=10.0)  # fail early, with the client's clear message, if nobody answers

    def estimate(path: Path):
        [reply] = client.estimate([path.read_bytes()], timeout=args.timeout, **options.to_wire())
        if "error" in reply:
            raise ServerError(reply["error"].code, str(reply["error"]))
        light = reply.get("light")
        result = Result(normals=reply["normals"], albedo=reply["albedo"], height=reply["height"],
                        mask=mask_to_uint8(reply["mask"]) if reply["mask"] is not None else None,
                        light=Light.from_json(light) if light else None)
        return result, reply
    return estimate


def run_info(args: argparse.Namespace) -> int:
    if args.server:
        from .client import ServerError
        try:
            with _client(args, timeout=5.0) as client:
                report = client.info(timeout=10.0)
        except (ServerError, ValueError) as error:
            return _fail(str(error))
        report = {k: v for k, v in report.items() if k not in ("id", "kind", "frames")}
    else:
        from .estimator import models
        from .estimator.networks import build_model, count_parameters
        from .estimator.pipeline import pick_device
        from .estimator.weights import WeightsError, read_metadata

        try:
            device = pick_device(args.device)
            size, weights = models.resolve(args.model, device, args.weights)
            if size:
                v3 = models.load_model(weights)
                parameters, config, provenance = count_parameters(v3), v3.config.to_dict(), dict[str, str]()
            else:
                shipped, provenance = read_metadata(weights)
                parameters, config = count_parameters(build_model(shipped)), shipped.to_dict()
        except (WeightsError, ValueError) as error:
            return _fail(str(error))
        report = {"weights": str(weights), "model": size or "shipped", "device": str(device),
                  "parameters": parameters, "config": config, "provenance": provenance}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>11}: {value}")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import dataclasses

    from .client.protocol import Limits
    from .estimator import Estimator, WeightsError
    from .server import CurveKeys, Server, ServerStartError

    _log_to_stdout("%(asctime)s %(levelname)s %(message)s")

    if bool(args.curve_secret) != bool(args.curve_clients):
        return _fail("--curve-secret and --curve-clients go together")
    curve = CurveKeys(Path(args.curve_secret), Path(args.curve_clients)) if args.curve_secret else None
    limits = dataclasses.replace(Limits(), **dict(args.limit))
    try:
        server = Server(Estimator(args.weights, device=args.device, model=args.model), args.bind, curve=curve,
                        limits=limits, max_batch=args.max_batch, idle_timeout=args.idle_timeout,
                        state_file=Path(args.state_file) if args.state_file else None)
    except (WeightsError, ValueError, ServerStartError) as error:
        return _fail(str(error))
    server.serve_forever()
    return 0


def run_keys(args: argparse.Namespace) -> int:
    from .server.security import make_keys
    try:
        public, secret = make_keys(Path(args.folder), args.name)
    except OSError as error:
        return _fail(f"cannot write the keys into {args.folder}: {error.strerror or error}")
    print(f"public key (give to the other side): {public}\nsecret key (keep private): {secret}")
    return 0


def _log_to_stdout(form: str = "%(message)s") -> None:
    """The library logs (backend.*); a command shows those lines as its output."""
    import logging
    logging.basicConfig(level=logging.INFO, format=form, stream=sys.stdout, force=True)


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
