"""Session start: every parameter of the run is validated and completed, then the thread count is pinned.

All happens in ``after_context_created``, before kedro-mlflow opens a run and before any node
reads or writes anything, so a bad parameter leaves no trace but its error message. The session's
parameters become the complete ones (:func:`neurontune.methods.complete_parameters`: every default
filled in from the schema, every method's settings from the registry), so nodes never fill defaults
and the run's logged parameters show every setting it used.
"""

from __future__ import annotations

import logging
import os

from kedro.framework.hooks import hook_impl

from neurontune.methods import complete_parameters, load_registry, validate_run
from neurontune.parameters import ParameterSources

logger = logging.getLogger(__name__)


def pin_threads(threads: int) -> None:
    """Use ``threads`` CPU threads in torch and in every BLAS/OpenMP pool of this process (and its children).

    A float sum split across threads is rounded differently for another split, so the thread count, not
    ``OMP_NUM_THREADS`` (whatever the shell says), decides the last bits of ERM's weights.
    """
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(limits=threads)  # numpy's and scipy's BLAS, scikit-learn's OpenMP
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)  # worker processes start with the same count


class RunSettingsHook:
    """Validates the parameters of the session's environment (``conf/base`` + ``conf/<env>`` + ``--params``)
    against :mod:`neurontune.parameters` and the method registry, naming the file that set each bad key, installs
    the completed parameters, then pins the thread count."""

    @hook_impl(tryfirst=True)  # before the lineage hook and kedro-mlflow contact the tracking server
    def after_context_created(self, context) -> None:
        loader = context.config_loader
        env = context.env or loader.default_run_env
        sources = ParameterSources.from_config(loader.conf_source, env, loader.runtime_params, base_env=loader.base_env,
                                               patterns=tuple(loader.config_patterns["parameters"]),
                                               relative_to=context.project_path)
        raw = loader["parameters"]
        parameters = validate_run(raw, sources, env, registry=load_registry(context.project_path))
        # OmegaConfigLoader returns a key set on it as it is: the context's params (and so the catalog's) read this
        loader["parameters"] = complete_parameters(raw)
        pin_threads(parameters.runtime.threads)
        logger.info("parameters of environment %r valid; %d CPU threads", env, parameters.runtime.threads)
