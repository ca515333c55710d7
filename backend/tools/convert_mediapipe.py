"""Convert MediaPipe's face and person models (.tflite, Apache-2.0) into the safetensors the backend ships.

    pip install tflite        # the pure-Python flatbuffer reader; needed here only
    pip download --no-deps mediapipe==0.10.21 --python-version 3.11 --only-binary=:all: \
        --platform manylinux_2_28_x86_64 -d /tmp/mp
    python -m backend.tools.convert_mediapipe /tmp/mp/mediapipe-0.10.21-*.whl

Each model becomes one file in backend/weights/: its constant tensors (float16, as the .tflite
stores them; sparse ones densified) and, in the metadata, the graph as a list of ops that
`backend.estimator.graph_module.GraphModule` runs in PyTorch.  Nothing else is kept from the
wheel, and nothing of TFLite is needed at run time.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import tflite
from safetensors.numpy import save_file

WEIGHTS = Path(__file__).resolve().parents[1] / "weights"
MODELS = {  # path inside the wheel -> file written to backend/weights
    "mediapipe/modules/face_detection/face_detection_short_range.tflite": "face_detection_short_range",
    "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite": "face_detection_full_range",
    "mediapipe/modules/face_landmark/face_landmark.tflite": "face_landmark",
    "mediapipe/modules/iris_landmark/iris_landmark.tflite": "iris_landmark",  # 5 iris points an eye
    # the general (256x256) person segmentation model; not the 144x256 _landscape one
    "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite": "selfie_segmentation",
}
OPERATORS = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
DTYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
          tflite.TensorType.INT32: np.int32, tflite.TensorType.INT64: np.int64}
ACTIVATIONS = {0: None, 1: "relu", 3: "relu6"}
PADDING = {0: "same", 1: "valid"}
FOLDED = {"DEQUANTIZE", "DENSIFY"}  # constant-only ops, evaluated here
CUSTOM = {"Convolution2DTransposeBias": "TRANSPOSE_CONV_BIAS"}  # MediaPipe's own ops, by our name


def _options(op, cls):
    table = op.BuiltinOptions()
    options = cls()
    options.Init(table.Bytes, table.Pos)
    return options


def _op_attributes(name: str, op) -> dict:
    """The options each op kind needs at run time, as plain JSON."""
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        o = _options(op, tflite.Conv2DOptions if name == "CONV_2D" else tflite.DepthwiseConv2DOptions)
        assert o.DilationHFactor() == o.DilationWFactor() == 1
        return {"stride": [o.StrideH(), o.StrideW()], "padding": PADDING[o.Padding()],
                "activation": ACTIVATIONS[o.FusedActivationFunction()]}
    if name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        o = _options(op, tflite.Pool2DOptions)
        assert o.FusedActivationFunction() == 0
        return {"stride": [o.StrideH(), o.StrideW()], "kernel": [o.FilterHeight(), o.FilterWidth()],
                "padding": PADDING[o.Padding()]}
    if name in ("ADD", "MUL"):
        o = _options(op, tflite.AddOptions if name == "ADD" else tflite.MulOptions)
        return {"activation": ACTIVATIONS[o.FusedActivationFunction()]}
    if name == "CONCATENATION":
        o = _options(op, tflite.ConcatenationOptions)
        return {"axis": o.Axis(), "activation": ACTIVATIONS[o.FusedActivationFunction()]}
    if name == "RESIZE_BILINEAR":
        o = _options(op, tflite.ResizeBilinearOptions)
        return {"align_corners": o.AlignCorners(), "half_pixel_centers": o.HalfPixelCenters()}
    if name == "DEPTH_TO_SPACE":
        return {"block": _options(op, tflite.DepthToSpaceOptions).BlockSize()}
    if name == "TRANSPOSE_CONV_BIAS":  # options: TfLiteTransposeConvParams (padding enum, strides) raw
        padding, stride_w, stride_h = op.CustomOptionsAsNumpy().view(np.int32)[:3]
        return {"stride": [int(stride_h), int(stride_w)], "padding": {1: "same", 2: "valid"}[int(padding)]}
    return {}


def _segments(meta, which: str) -> np.ndarray:
    kind = getattr(meta, f"Array{which}Type")()
    cls = {1: tflite.Int32Vector, 2: tflite.Uint16Vector, 3: tflite.Uint8Vector}[kind]
    table = getattr(meta, f"Array{which}")()
    vector = cls()
    vector.Init(table.Bytes, table.Pos)
    return vector.ValuesAsNumpy()


def _densify(values: np.ndarray, shape: list[int], sparsity) -> np.ndarray:
    """TFLite's sparse format (a traversal order over the dims and their blocks, each dense or
    CSR) back to the dense tensor."""
    order = list(sparsity.TraversalOrderAsNumpy())
    block_map = list(sparsity.BlockMapAsNumpy()) if sparsity.BlockMapLength() else []
    metas = [sparsity.DimMetadata(i) for i in range(sparsity.DimMetadataLength())]
    rank = len(shape)
    block_sizes = {block_map[j]: metas[order.index(rank + j)].DenseSize() for j in range(len(block_map))}
    dense = np.zeros(shape, values.dtype)
    coords = [0] * len(order)

    def visit(level: int, position: int) -> None:
        if level == len(order):
            index = [coords[d] * block_sizes.get(d, 1) for d in range(rank)]
            for j, d in enumerate(block_map):
                index[d] += coords[rank + j]
            dense[tuple(index)] = values[position]
            return
        meta = metas[level]
        if meta.Format() == tflite.DimensionType.DENSE:
            for i in range(meta.DenseSize()):
                coords[order[level]] = i
                visit(level + 1, position * meta.DenseSize() + i)
        else:
            segments, indices = _segments(meta, "Segments"), _segments(meta, "Indices")
            for j in range(segments[position], segments[position + 1]):
                coords[order[level]] = int(indices[j])
                visit(level + 1, j)

    visit(0, 0)
    return dense


def convert(data: bytes) -> tuple[dict[str, np.ndarray], dict]:
    """A .tflite model -> (constant tensors by id, graph description)."""
    model = tflite.Model.GetRootAsModel(data, 0)
    graph = model.Subgraphs(0)
    constants: dict[int, np.ndarray] = {}
    for i in range(graph.TensorsLength()):
        tensor = graph.Tensors(i)
        raw = model.Buffers(tensor.Buffer()).DataAsNumpy()
        if isinstance(raw, np.ndarray) and raw.size:
            array = raw.view(DTYPES[tensor.Type()])
            shape = list(tensor.ShapeAsNumpy()) if tensor.ShapeLength() else []
            if tensor.Sparsity() is not None:
                constants[i] = array  # the stored values; a DENSIFY op expands them below
            else:
                constants[i] = array.reshape(shape)
    ops = []
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = OPERATORS[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        if name == "CUSTOM":
            name = CUSTOM[code.CustomCode().decode()]
        inputs = [int(j) for j in op.InputsAsNumpy()]
        outputs = [int(j) for j in op.OutputsAsNumpy()]
        if name in FOLDED:
            source = graph.Tensors(inputs[0])
            value = constants[inputs[0]]
            if name == "DENSIFY":
                value = _densify(value, list(source.ShapeAsNumpy()), source.Sparsity())
            constants[outputs[0]] = value  # stays float16: DEQUANTIZE of float16 is exact
            continue
        shapes = [list(map(int, graph.Tensors(j).ShapeAsNumpy())) for j in outputs]
        ops.append({"op": name, "inputs": inputs, "outputs": outputs, "shapes": shapes,
                    **_op_attributes(name, op)})
    used = {j for op in ops for j in op["inputs"]}
    tensors = {str(j): np.ascontiguousarray(v) for j, v in constants.items() if j in used}
    description = {"inputs": [int(graph.Inputs(i)) for i in range(graph.InputsLength())],
                   "outputs": [int(graph.Outputs(i)) for i in range(graph.OutputsLength())],
                   "ops": ops}
    return tensors, description


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="the mediapipe 0.10.21 wheel (a zip)")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args(argv)
    with zipfile.ZipFile(args.wheel) as wheel:
        for member, stem in MODELS.items():
            data = wheel.read(member)
            tensors, graph = convert(data)
            metadata = {"graph": json.dumps(graph, separators=(",", ":")),
                        "source": f"{args.wheel.name}:{member}",
                        "source_sha256": hashlib.sha256(data).hexdigest(),
                        "licence": "Apache-2.0 (MediaPipe authors); see MEDIAPIPE_NOTICE"}
            path = args.out / f"{stem}.safetensors"
            save_file(tensors, str(path), metadata=metadata)
            print(f"{member} -> {path} ({len(graph['ops'])} ops, {path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
