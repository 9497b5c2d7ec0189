"""The schema of License.features: every key optional, absent means no limit.

    {
      "models": ["tiny.en", ...],      # model names the license may use
      "max_audio_seconds": 3600,       # longest single upload, seconds
      "monthly_audio_minutes": 600,    # audio per UTC calendar month, minutes
      "max_concurrent_jobs": 2,        # queued + processing at once
      "translate": true                # whether mode=translate is allowed
    }
"""

from typing import Any

FEATURE_KEYS = ("models", "max_audio_seconds", "monthly_audio_minutes", "max_concurrent_jobs", "translate")
_LIMIT_KEYS = ("max_audio_seconds", "monthly_audio_minutes", "max_concurrent_jobs")


def validate_features(features: Any) -> dict[str, Any]:
    """Return the features dict if it fits the schema; raise ValueError naming the problem."""
    if features is None:
        return {}
    if not isinstance(features, dict):
        raise ValueError("features must be a JSON object")
    unknown = sorted(set(features) - set(FEATURE_KEYS))
    if unknown:
        raise ValueError(
            f"unknown feature key(s): {', '.join(unknown)}; allowed: {', '.join(FEATURE_KEYS)}"
        )
    if "models" in features:
        models = features["models"]
        if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
            raise ValueError("features.models must be a list of model names (non-empty strings)")
    for key in _LIMIT_KEYS:
        if key in features:
            value = features[key]
            # bool is an int subclass; true is not a number of seconds.
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"features.{key} must be a non-negative integer")
    if "translate" in features and not isinstance(features["translate"], bool):
        raise ValueError("features.translate must be true or false")
    return features
