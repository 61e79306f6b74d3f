"""keras_recipes.experiments: what the scripts in ``recipes/`` share.

The command line (a dataclass of defaults, :func:`parse_config`), the run folder
(:func:`start_run`, :func:`finish_run`, :func:`save_json`), compiled models reused across
runs (:class:`CompiledModels`) and the results
(mean ± sd over seeds, Markdown tables, CSV history, curve plots). The Keras backend
is chosen before Keras is imported, by ``recipes/_bootstrap.py``.
"""

from keras_recipes.experiments.command_line import (
    BACKENDS,
    RecipeConfig,
    check_config,
    option,
    parse_config,
    print_config,
)
from keras_recipes.experiments.compiled_models import CompiledModels
from keras_recipes.experiments.recipe_error import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    RecipeError,
    run_recipe,
)
from keras_recipes.experiments.results import (
    fingerprint,
    format_mean_sd,
    markdown_table,
    mean_sd,
    phase_summaries,
    plot_curves,
    predict_logits,
    pyplot,
    sparse_scores,
    summarize,
    to_jsonable,
    write_csv,
)
from keras_recipes.experiments.run_folder import (
    finish_run,
    make_run_dir,
    newest_run,
    save_json,
    start_run,
)

__all__ = [
    "BACKENDS",
    "CompiledModels",
    "EXIT_BAD_INPUT",
    "EXIT_INTERRUPTED",
    "RecipeConfig",
    "RecipeError",
    "check_config",
    "fingerprint",
    "finish_run",
    "format_mean_sd",
    "make_run_dir",
    "markdown_table",
    "mean_sd",
    "newest_run",
    "option",
    "parse_config",
    "phase_summaries",
    "plot_curves",
    "predict_logits",
    "print_config",
    "pyplot",
    "run_recipe",
    "save_json",
    "sparse_scores",
    "start_run",
    "summarize",
    "to_jsonable",
    "write_csv",
]
