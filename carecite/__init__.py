"""carecite: offline clinical knowledge assistant (settings, model resolution, CLI)."""
import os as _os

# Never reach for a hub or phone home: every model comes from a local package or path.
for _k, _v in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
               "GRADIO_ANALYTICS_ENABLED": "False", "TOKENIZERS_PARALLELISM": "false",
               "ANONYMIZED_TELEMETRY": "False"}.items():
    _os.environ.setdefault(_k, _v)

__version__ = "0.1.0"
