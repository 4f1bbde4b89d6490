"""Every collection as a Beanie Document; `DOCUMENT_MODELS` is the one list used everywhere."""

from chatadmin.models.admin_user import AdminUser, ApiKey
from chatadmin.models.analysis import Analysis, AnalysisResult, ResultRow, SavedAnalysis
from chatadmin.models.analytics import AnalyticsSummary, DailyAnalytics
from chatadmin.models.audit import AuditLog
from chatadmin.models.cache import CacheEntry
from chatadmin.models.connection import Connection
from chatadmin.models.context import ChatContext
from chatadmin.models.execution import Execution
from chatadmin.models.journal import WriteJournal
from chatadmin.models.message import AiMetadata, Feedback, Message, QuestionContext
from chatadmin.models.migration import MigrationRecord
from chatadmin.models.retention import MonthlyAnalytics, RetentionRun
from chatadmin.models.share import SharedThread
from chatadmin.models.thread import Thread
from chatadmin.models.user import User

DOCUMENT_MODELS = [
    User,
    Thread,
    Message,
    Analysis,
    Execution,
    SavedAnalysis,
    AuditLog,
    CacheEntry,
    SharedThread,
    ChatContext,
    DailyAnalytics,
    Connection,
    MigrationRecord,
    AdminUser,
    ApiKey,
    RetentionRun,
    MonthlyAnalytics,
    WriteJournal,
]

# Collections with `expires_at`/`expires_at_ms`, deleted by the sweeper.
EXPIRING_MODELS = [CacheEntry, SharedThread, ChatContext, Connection]

__all__ = [
    "DOCUMENT_MODELS",
    "EXPIRING_MODELS",
    "AdminUser",
    "AiMetadata",
    "Analysis",
    "AnalysisResult",
    "AnalyticsSummary",
    "ApiKey",
    "AuditLog",
    "CacheEntry",
    "ChatContext",
    "Connection",
    "DailyAnalytics",
    "Execution",
    "Feedback",
    "Message",
    "MigrationRecord",
    "QuestionContext",
    "ResultRow",
    "SavedAnalysis",
    "SharedThread",
    "Thread",
    "User",
    "WriteJournal",
]
