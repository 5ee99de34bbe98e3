"""Trade-name (字号 / handle) registry: pure rules and the in-process service.

Part D of docs/spec/evidence.md (H-1 .. H-18), decisions A-13 .. A-16 as configuration.
Modules, one job each:

- calendar    G-1/G-2/G-3: Beijing month arithmetic, half-open intervals
- charset     G-7: NFKC, allowed characters, GBK byte length
- words       banned / restricted / brand lists (reloadable), word-break segmentation
- validation  handle and shop-name validity with typed refusal reasons (live check)
- applicants  shops, applicant groups, eligibility windows (H-11, H-14, H-15)
- quota       handle change quota (H-10, A-13)
- holds       one-month hold and penalty review (H-12, A-16)
- disputes    metrics, scores, ranking, tie-breaks, objection period (H-15 .. H-17)
- trademark   trademark complaints against a held handle: rules and readings (H-13)
- events      event values, canonical bytes, the `EventSink` seam
- store       `NameStore` protocol and the in-memory store
- sqlite_store, record_json   the SQLite store and a record's JSON form
- core, lifecycle, complaints, registry   the service
- commands, operations, brand_claims, views   the use cases the API offers: the
              caller and its commands, who may do what, the brand proof's evidence
              lookup, what a caller is shown
- errors      `NamesError` and its kinds, raised by the use cases (web/errors.py maps them)
- config      `Policy` loaded from conf/names.toml
- policy_edits, policy_store, policy_admin   administrators' edits of the word lists
              and weights: an overlay on conf/ kept (time-stamped) in the names database;
              policy_operations: the administrators' use cases
- timestamping  the served registry (`NamesService`): events time-stamped by this TSA;
              `NamesService.handle_of(org_id)` is an organisation's current handle
"""

from tsa_server.clock.beijing import BEIJING, Interval, add_months, beijing

from .applicants import Group, Mark, MarkKind, Shop, ShopState
from .charset import CharacterError, Measure, fold, gbk_length, measure, normalize
from .config import Policy, PolicyError, load_policy
from .core import Done, ReleaseCause, Result, ReviewOutcome
from .disputes import Metrics, Ranking, rank, score, search_to_shop_rate
from .events import Event, EventKind, EventSink, MemorySink
from .reasons import Field, Refusal, Refused
from .registry import ContestView, Registry
from .store import HandleStatus, MemoryStore, NameStore
from .validation import Check, check_custom, check_handle, check_shop_name
from .words import Lexicon, LexiconSource, segment

__all__ = [
    "BEIJING",
    "CharacterError",
    "Check",
    "ContestView",
    "Done",
    "Event",
    "EventKind",
    "EventSink",
    "Field",
    "Group",
    "HandleStatus",
    "Interval",
    "Lexicon",
    "LexiconSource",
    "Mark",
    "MarkKind",
    "Measure",
    "MemorySink",
    "MemoryStore",
    "Metrics",
    "NameStore",
    "Policy",
    "PolicyError",
    "Ranking",
    "Refusal",
    "Refused",
    "Registry",
    "ReleaseCause",
    "Result",
    "ReviewOutcome",
    "Shop",
    "ShopState",
    "add_months",
    "beijing",
    "check_custom",
    "check_handle",
    "check_shop_name",
    "fold",
    "gbk_length",
    "load_policy",
    "measure",
    "normalize",
    "rank",
    "score",
    "search_to_shop_rate",
    "segment",
]
