"""The retrain worker: drift alerts answered with MLflow runs, registered versions and promotions.

Modules (import them directly; this package stays light so ``driftline --help`` is fast):

- `app`: composition root (`run_worker`, `build_handler`); `loop`: poll, handle, publish, commit;
- `handler`: the decision flow for one alert (`RetrainHandler`, `HandleResult`);
- `data`: `labeled` read back by event time, the training frame and its time split;
- `trainers`: built-in trainers and the ``module:function`` loader; `evaluation`: holdout metrics;
- `policy`: the promotion policy and the cooldown (pure); `registry`: the MLflow adapter;
- `drift`: latest alert and reference, a window re-tested; `oneshot`: ``driftline retrain``;
- `announce`: hand-made registry decisions published on `models`; `cli`: the commands.
"""

__all__: list[str] = []
