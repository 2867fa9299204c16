"""What the gateway, the control-engine and the eval-engine share about evaluations: the catalog
of evaluators with their configuration models (:mod:`.catalog`, :mod:`.configs`), the monthly
eval quota (:mod:`.quota`) and the counters of eval rules (:mod:`.counters`). The evaluators
themselves run in the eval-engine."""
