"""Training data: typed record formats, validation with line-and-field reports, conversions.

    formats.py   the record models (messages, OpenAI chat, prompt/completion, text, RFT prompts,
                 DPO preference pairs) and ``to_messages``
    validate.py  ``validate`` / ``validate_dataset`` / ``load_records`` against a family's rules
    preference.py  the same for DPO's preference pairs
    datasets.py  ``validate_dataset`` / ``load_records`` by customization type: what training calls
    convert.py   Q&A and prompt/completion files to messages JSONL, with an optional split
    render.py    records -> ``Example(input_ids, labels)`` with the model's chat template
    token_cache.py  a text (CPT) file tokenized once into a memory-mapped Arrow cache, for data
                 bigger than memory (imports ``datasets`` only when used)

See docs/data.md for the user-facing rules.
"""

from tailor.data.datasets import load_records, validate_dataset
from tailor.data.formats import (
    Message,
    MessagesRecord,
    PromptCompletionRecord,
    Record,
    TextRecord,
    to_messages,
)

# ``validate`` is not re-exported: the name would hide the module ``tailor.data.validate``.
from tailor.data.validate import Problem, Report

__all__ = [
    "Message",
    "MessagesRecord",
    "Problem",
    "PromptCompletionRecord",
    "Record",
    "Report",
    "TextRecord",
    "load_records",
    "to_messages",
    "validate_dataset",
]
