"""The generator as an MLflow pyfunc model: a table of requests in, faces out.

Train logs it with the ``.keras`` file (and a conditional model's ``attributes.json``) as
artifacts and this package as code, so a process with only the project's dependencies
installed loads it (``mlflow.pyfunc.load_model``, ``mlflow models serve``) and never needs to
import ``sagan`` itself: MLflow puts the package's copy inside the model on the path.

Each row of the input asks for faces in one of two ways:

- ``seed`` and ``count``: the first ``count`` faces that the generate stage draws with
  ``generate.seed: <seed>``. A conditional model draws their attributes as generate does,
  holding fixed those the row gives in its attribute columns (one column per conditioned
  attribute, holding a class index, like ``generate.attributes``).
- ``z``, a list of ``latent_dim`` numbers: the one face of that latent vector; a conditional
  model needs every attribute column in such a row.

The output is uint8 faces (N, S, S, 3) in the order asked; with the param ``format: png``,
a list of base64-encoded PNG files instead.
"""

from __future__ import annotations

import base64
import io
import math
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema, TensorSpec
from PIL import Image

from sagan.config import ConfigError
from sagan.model.conditioning import Conditioning, model_inputs, read_conditioning
from sagan.model.saved import load_model
from sagan.sampling.faces import inference_graph, latent_noise, sample_codes
from sagan.sampling.grids import to_uint8

if TYPE_CHECKING:  # not at load time: the served model never talks to a tracking store
    from sagan.tracking import MlflowTracker

GENERATOR_ARTIFACT = "generator"
CONDITIONING_ARTIFACT = "conditioning"
FORMATS = ("uint8", "png")
MAX_FACES = 1024  # per request: a bigger one is refused rather than left to exhaust memory
BATCH_SIZE = 250  # faces per forward pass, as the generate stage draws them
REQUIREMENTS = ("tensorflow", "keras", "numpy", "pandas", "pillow", "pyyaml", "tqdm")


class BadRequest(MlflowException):
    """A request the model cannot answer: the server replies 400 with this message."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)


def request_schema(conditioning: Conditioning | None) -> Schema:
    """The input table: ``seed`` and ``count``, or ``z``; a conditional model's attributes."""
    attributes = () if conditioning is None else conditioning.names
    return Schema(
        [
            ColSpec("long", "seed", required=False),
            ColSpec("long", "count", required=False),
            ColSpec(Array("double"), "z", required=False),
            *(ColSpec("long", name, required=False) for name in attributes),
        ]
    )


def response_schema(image_size: int) -> Schema:
    return Schema([TensorSpec(np.dtype(np.uint8), (-1, image_size, image_size, 3))])


def params_schema() -> ParamSchema:
    return ParamSchema([ParamSpec("format", "string", FORMATS[0])])


class FaceGenerator(mlflow.pyfunc.PythonModel):
    """Draws faces for a table of requests; see the module docstring."""

    def load_context(self, context: Any) -> None:
        self.generator = load_model(Path(context.artifacts[GENERATOR_ARTIFACT]))
        self.forward = inference_graph(self.generator)
        self.latent_dim = self.generator.inputs[0].shape[-1]
        conditioning_file = context.artifacts.get(CONDITIONING_ARTIFACT)
        self.conditioning = (
            None if conditioning_file is None else read_conditioning(Path(conditioning_file))
        )

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> np.ndarray | list[str]:
        image_format = (params or {}).get("format", FORMATS[0])
        if image_format not in FORMATS:
            raise BadRequest(f"format must be one of {', '.join(FORMATS)}, got {image_format!r}")
        rows = pd.DataFrame(model_input).to_dict("records")
        if not rows:
            raise BadRequest("the request holds no rows")
        wanted = [self._count(row) for row in rows]
        if sum(wanted) > MAX_FACES:
            raise BadRequest(f"at most {MAX_FACES} faces a request, asked for {sum(wanted)}")
        inputs = [self._inputs(row, count) for row, count in zip(rows, wanted, strict=True)]
        z = np.concatenate([noise for noise, _ in inputs])
        attributes = None if self.conditioning is None else np.concatenate([a for _, a in inputs])
        faces = self._draw(z, attributes)
        if image_format == "png":
            return [_png_base64(face) for face in faces]
        return faces

    def _count(self, row: dict) -> int:
        """How many faces ``row`` asks for, checked."""
        if _given(row.get("z")):
            if _given(row.get("seed")) or _given(row.get("count")):
                raise BadRequest("a row gives either z, or seed and count, not both")
            if len(row["z"]) != self.latent_dim:
                raise BadRequest(f"z must hold {self.latent_dim} numbers, got {len(row['z'])}")
            return 1
        missing = [column for column in ("seed", "count") if not _given(row.get(column))]
        if missing:
            raise BadRequest(f"a row needs the columns seed and count (or z); missing: {missing}")
        if row["count"] < 1:
            raise BadRequest(f"count must be at least 1, got {row['count']}")
        if row["seed"] < 0:
            raise BadRequest(f"seed must be at least 0, got {row['seed']}")
        return int(row["count"])

    def _inputs(self, row: dict, count: int) -> tuple[np.ndarray, np.ndarray | None]:
        """The noise (count, latent_dim) and one-hot attributes (count, K) of one row."""
        fixed = self._fixed_attributes(row)
        if _given(row.get("z")):
            noise = np.asarray(row["z"], np.float32)[None]
            if self.conditioning is None:
                return noise, None
            missing = [name for name in self.conditioning.names if name not in fixed]
            if missing:
                raise BadRequest(f"a row with z needs every attribute; missing: {missing}")
            self._checked(self.conditioning.check_classes, fixed)
            codes = np.array([[fixed[name] for name in self.conditioning.names]])
            return noise, self.conditioning.encode(codes).numpy()
        seed = int(row["seed"])
        noise = latent_noise(self.latent_dim, count, seed).numpy()
        if self.conditioning is None:
            return noise, None
        distribution = self._checked(self.conditioning.fixing, fixed)
        codes = sample_codes(distribution, count, seed)
        return noise, self.conditioning.encode(codes).numpy()

    def _fixed_attributes(self, row: dict) -> dict[str, int]:
        if self.conditioning is None:
            return {}
        return {name: int(row[name]) for name in self.conditioning.names if _given(row.get(name))}

    @staticmethod
    def _checked(check: Callable[[dict, str], Any], fixed: dict[str, int]) -> Any:
        """``check(fixed, key)``, its ConfigError turned into a bad request."""
        try:
            return check(fixed, "request")
        except ConfigError as error:
            raise BadRequest(str(error)) from error

    def _draw(self, z: np.ndarray, attributes: np.ndarray | None) -> np.ndarray:
        batches = []
        for start in range(0, len(z), BATCH_SIZE):
            rows = None if attributes is None else attributes[start : start + BATCH_SIZE]
            inputs = model_inputs(z[start : start + BATCH_SIZE], rows)
            batches.append(to_uint8(self.forward(inputs).numpy()))
        return np.concatenate(batches)


def log_generator(
    tracker: MlflowTracker, generator: keras.Model, conditioning_file: Path | None = None
) -> str:
    """Log ``generator`` into the tracker's run as this module's model; its MLflow model id.

    ``conditioning_file``: a conditional model's ``attributes.json``.
    """
    conditioning = None if conditioning_file is None else read_conditioning(conditioning_file)
    signature = ModelSignature(
        inputs=request_schema(conditioning),
        outputs=response_schema(generator.outputs[0].shape[1]),
        params=params_schema(),
    )
    with tempfile.TemporaryDirectory() as folder:
        artifacts = {GENERATOR_ARTIFACT: Path(folder) / "generator.keras"}
        generator.save(artifacts[GENERATOR_ARTIFACT])
        if conditioning_file is not None:
            artifacts[CONDITIONING_ARTIFACT] = conditioning_file
        return tracker.log_python_model(
            model_file=Path(__file__),
            artifacts=artifacts,
            code_dir=Path(__file__).parents[1],  # the sagan package
            signature=signature,
            input_example=pd.DataFrame({"seed": [0], "count": [2]}),
            requirements=requirements(),
        )


def requirements() -> list[str]:
    """The installed versions of what the model imports, pinned: spares MLflow a slow,
    failure-prone inference."""
    return [f"{name}=={version(name)}" for name in REQUIREMENTS]


def _given(value: Any) -> bool:
    """Whether a cell holds a value: pandas fills an absent one with None or NaN."""
    if value is None:
        return False
    return not (isinstance(value, float) and math.isnan(value))


def _png_base64(face: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(face).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# Logged as a model "from code": MLflow runs this file when the model loads, with the
# model's copy of the sagan package on the path, and takes the model set here.
mlflow.models.set_model(FaceGenerator())
