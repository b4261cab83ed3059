"""A training dataset checked and read by the rules of its customization type: conversations,
prompt/completion pairs, text and RFT prompts by ``validate.py``; DPO's preference pairs by
``preference.py`` (which builds on it). What training and ``tailor data validate`` call."""

from __future__ import annotations

from tailor.catalog import CustomizationType
from tailor.data import preference, validate


def validate_dataset(training_uri: str, validation_uris: list[str], customization_type: CustomizationType,
                     model, **options) -> list[validate.Report]:
    """One report per file, training first (``options``: tokenizer, settings, reference_required)."""
    if customization_type == CustomizationType.DPO:
        options.pop("reference_required", None)
        return preference.validate_preference_dataset(training_uri, validation_uris, model, **options)
    return validate.validate_dataset(training_uri, validation_uris, customization_type, model, **options)


def load_records(uri: str, customization_type: CustomizationType, model, **options) -> list:
    """The file's typed records (``options``: purpose, tokenizer, settings, reference_required)."""
    if customization_type == CustomizationType.DPO:
        options.pop("reference_required", None)
        return preference.load_preference_records(uri, model, **options)
    return validate.load_records(uri, customization_type, model, **options)
