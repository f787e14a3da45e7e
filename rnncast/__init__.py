"""rnncast: a forecasting pipeline for long time series (Apache Beam jobs, Keras RNNs).

The code lives in three subpackages, kept as top-level folders of the repository and mapped
here by ``pyproject.toml``'s ``package-dir``:

- ``rnncast.pipeline``: the Beam jobs, their IO and the pure numpy/pandas logic;
- ``rnncast.model``: the Keras forecaster, training and export;
- ``rnncast.schemas``: the versioned JSON schemas of every file the jobs write.

``import rnncast`` makes rnncast's Keras classes known to Keras, so a saved model loads in
safe mode without importing anything else::

    import keras, rnncast
    model = keras.saving.load_model("model/export/model.keras", safe_mode=True)

It does so without importing TensorFlow itself (seconds, which ``rnncast --help`` must not
wait for): the classes are registered as soon as Keras or TensorFlow is imported, before or
after this package.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import os
import sys

__version__ = "0.1.0"
__all__ = ["__version__"]

_HERE = os.path.dirname(os.path.abspath(__file__))
if not os.path.isdir(os.path.join(_HERE, "pipeline")):
    # A source checkout run without installing (PYTHONPATH=the repository): the subpackages
    # sit beside this folder. An installed package (wheel or editable) has them mapped inside.
    __path__.append(os.path.dirname(_HERE))

# The module whose import registers the Keras classes (it imports rnncast.model.rnn).
_KERAS_CLASSES = "rnncast.model.forecaster"
# Either import brings in the other (Keras 3's TensorFlow backend; TensorFlow's tf.keras).
_FRAMEWORKS = ("keras", "tensorflow")


# Set by quiet_import() (the command line does, unless -v).
_QUIET = {"import": False}


def quiet_import() -> None:
    """Silence file descriptor 2 while TensorFlow/Keras first load: TensorFlow's C++ start-up
    lines (oneDNN, CUDA drivers, absl's "All log messages before absl::InitializeLog()") are
    written before TF_CPP_MIN_LOG_LEVEL applies. An import that fails still raises, after
    stderr is back."""
    _QUIET["import"] = True


@contextlib.contextmanager
def _stderr_silenced():
    """File descriptor 2 goes to /dev/null inside (C++ code writes there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _RegisterAfterFramework(importlib.abc.MetaPathFinder):
    """Registers rnncast's Keras classes once the first of Keras/TensorFlow has loaded (and,
    after :func:`quiet_import`, keeps that first load's stderr quiet).

    It wraps the loader of whichever of the two is imported first; when that import returns,
    both are fully initialised (each imports the other), and the forecaster module can be
    imported safely. It then removes itself.
    """

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _FRAMEWORKS:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        execute = spec.loader.exec_module

        def exec_module(module):
            with _stderr_silenced() if _QUIET["import"] else contextlib.nullcontext():
                execute(module)
            importlib.import_module(_KERAS_CLASSES)

        spec.loader.exec_module = exec_module
        return spec


def _register_keras_classes() -> None:
    if any(name in sys.modules for name in _FRAMEWORKS):
        importlib.import_module(_KERAS_CLASSES)
    elif not any(isinstance(finder, _RegisterAfterFramework) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterFramework())


_register_keras_classes()
