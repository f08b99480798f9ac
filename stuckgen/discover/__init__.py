"""Find a database's job table and propose the configuration that reads it (`stuckgen init`, `schema`).

Everything here only reads: the catalogs, then a census of the status column (counts
per value overall and in the last day, the newest sign of life per value). Status
values are sorted into in flight / completed / failed / cancelled by the vocabularies
of the apps and providers stuckgen knows; a value no vocabulary knows is never
guessed into the in-flight list, it is shown so a person decides. Every choice
carries the reason that is written beside it in the generated stuckgen.toml.
"""

from __future__ import annotations

from stuckgen.discover.catalog import Candidate, Column, candidates, enum_labels, provider_columns
from stuckgen.discover.census import Census, ValueCount, census, statuses_unseen
from stuckgen.discover.config_file import QueueProposal, config_text, propose_config, propose_queues, toml_text
from stuckgen.discover.proposal import Choice, Proposal, propose
from stuckgen.discover.vocab import CANCELLED, COMPLETED, FAILED, INFLIGHT, VOCABULARY, Word, normalise, word

__all__ = ["CANCELLED", "COMPLETED", "FAILED", "INFLIGHT", "VOCABULARY", "Candidate", "Census", "Choice",
           "Column", "Proposal", "QueueProposal", "ValueCount", "Word", "candidates", "census", "config_text",
           "enum_labels", "normalise", "propose", "propose_config", "propose_queues", "provider_columns",
           "statuses_unseen", "toml_text", "word"]
