"""Session start: every parameter of the run is validated, then the thread count is pinned.

Both happen in ``after_context_created``, before kedro-mlflow opens a run and before any node
reads or writes anything, so a bad parameter leaves no trace but its error message.
"""

from __future__ import annotations

import logging
import os

from kedro.framework.hooks import hook_impl

from neurontune.methods import load_registry
from neurontune.parameters import ParameterSources, validate_parameters

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
    against :mod:`neurontune.parameters`, naming the file that set each bad key, then pins the thread count."""

    @hook_impl(tryfirst=True)  # before the lineage hook and kedro-mlflow contact the tracking server
    def after_context_created(self, context) -> None:
        loader = context.config_loader
        env = context.env or loader.default_run_env
        sources = ParameterSources.from_config(loader.conf_source, env, loader.runtime_params, base_env=loader.base_env,
                                               patterns=tuple(loader.config_patterns["parameters"]),
                                               relative_to=context.project_path)
        parameters = validate_parameters(loader["parameters"], sources, env, registry=load_registry(context.project_path))
        pin_threads(parameters.runtime.threads)
        logger.info("parameters of environment %r valid; %d CPU threads", env, parameters.runtime.threads)
