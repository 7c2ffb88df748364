"""Microcosm data sets: generated from a seed, shipped inside a package, or present on every
machine (the Python stdlib's own sources); never downloaded.

Language tasks give x (N, T) int64 tokens in [0, V) and y (N, T) int64 next tokens, with
IGNORE_INDEX (-100) at positions left out of "cross_entropy"; output_dim = vocab_size = V.

Adding a task: one file with a pydantic spec (a `name` Literal) and a
`make_<name>(spec, seed) -> Task` function, plus one row in `_TASKS` below.
"""

from typing import Annotated, Union

from pydantic import Field

from lmech.tasks.associative_recall import AssociativeRecallSpec, make_associative_recall
from lmech.tasks.binary_teacher import BinaryTeacherSpec, make_binary_teacher
from lmech.tasks.deep_linear import DeepLinearSpec, make_deep_linear
from lmech.tasks.digits import DigitsSpec, make_digits
from lmech.tasks.gaussian_regression import GaussianRegressionSpec, make_gaussian_regression
from lmech.tasks.in_context_regression import InContextRegressionSpec, make_in_context_regression
from lmech.tasks.markov_language import MarkovLanguageSpec, make_markov_language
from lmech.tasks.mnist1d import Mnist1dSpec, make_mnist1d
from lmech.tasks.modular_addition import ModularAdditionSpec, make_modular_addition
from lmech.tasks.multi_token_lookup import MultiTokenLookupSpec, make_multi_token_lookup
from lmech.tasks.modular_arithmetic_tokens import ModularArithmeticTokensSpec, make_modular_arithmetic_tokens
from lmech.tasks.power_law_features import PowerLawFeaturesSpec, make_power_law_features
from lmech.tasks.power_law_map import PowerLawMapSpec, make_power_law_map
from lmech.tasks.python_source import PythonSourceSpec, make_python_source
from lmech.tasks.quanta import QuantaSpec, make_quanta
from lmech.tasks.spectral_regression import SpectralRegressionSpec, make_spectral_regression
from lmech.tasks.task import IGNORE_INDEX, LossName, Task
from lmech.tasks.teacher_student import TeacherStudentSpec, make_teacher_student

__all__ = ["Task", "LossName", "IGNORE_INDEX", "TaskSpec", "TASK_NAMES", "make_task", "default_task_spec"]

_TASKS = {
    "gaussian_regression": (GaussianRegressionSpec, make_gaussian_regression),
    "deep_linear": (DeepLinearSpec, make_deep_linear),
    "teacher_student": (TeacherStudentSpec, make_teacher_student),
    "digits": (DigitsSpec, make_digits),
    "modular_addition": (ModularAdditionSpec, make_modular_addition),
    "power_law_features": (PowerLawFeaturesSpec, make_power_law_features),
    "power_law_map": (PowerLawMapSpec, make_power_law_map),
    "modular_arithmetic_tokens": (ModularArithmeticTokensSpec, make_modular_arithmetic_tokens),
    "markov_language": (MarkovLanguageSpec, make_markov_language),
    "quanta": (QuantaSpec, make_quanta),
    "associative_recall": (AssociativeRecallSpec, make_associative_recall),
    "in_context_regression": (InContextRegressionSpec, make_in_context_regression),
    "python_source": (PythonSourceSpec, make_python_source),
    "mnist1d": (Mnist1dSpec, make_mnist1d),
    "spectral_regression": (SpectralRegressionSpec, make_spectral_regression),
    "multi_token_lookup": (MultiTokenLookupSpec, make_multi_token_lookup),
    "binary_teacher": (BinaryTeacherSpec, make_binary_teacher),
}

TaskSpec = Annotated[
    Union[GaussianRegressionSpec, DeepLinearSpec, TeacherStudentSpec, DigitsSpec, ModularAdditionSpec,
          PowerLawFeaturesSpec, PowerLawMapSpec, ModularArithmeticTokensSpec, MarkovLanguageSpec, QuantaSpec,
          AssociativeRecallSpec, InContextRegressionSpec, PythonSourceSpec, Mnist1dSpec, BinaryTeacherSpec,
          SpectralRegressionSpec, MultiTokenLookupSpec],
    Field(discriminator="name"),
]
TASK_NAMES = tuple(_TASKS)


def default_task_spec(name: str):
    """The spec of task `name` with every field at its default (KeyError if unknown)."""
    return _TASKS[name][0]()


def make_task(spec, seed: int) -> Task:
    """Build the task named by `spec.name` with data drawn from `seed`."""
    return _TASKS[spec.name][1](spec, seed)
