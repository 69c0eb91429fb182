"""All tables, imported together so that they can refer to each other."""

from service.models.agreements import Agreement, AgreementVersion
from service.models.audit import AuditEvent
from service.models.auth import ApiKey, HashKey, Role, ServiceSecret
from service.models.base import Base
from service.models.clicks import (
    Click,
    ClickRollupHourly,
    ClickRollupSub1Hourly,
    ClickVisitorDaily,
    UserAgent,
)
from service.models.conversions import (
    AttributionMethod,
    Conversion,
    ConversionStatus,
    ConversionType,
    Customer,
    FxRate,
    Refund,
)
from service.models.events import (
    Event,
    EventDelivery,
    EventDeliveryAttempt,
    EventDeliveryStatus,
    EventSubscriptions,
    Postback,
    SubscriberStatus,
    WebhookEndpoint,
)
from service.models.integrations import (
    DeliveryStatus,
    Integration,
    IntegrationDelivery,
    IntegrationStatus,
    Provider,
)
from service.models.ledger import CommissionEntry, EntryKind, MonthTotal
from service.models.links import Link, LinkStatus, PromoCode, PromoCodeStatus
from service.models.partnering import (
    Application,
    ApplicationStatus,
    ClickBountyDay,
    Deal,
    DealStatus,
    Dispute,
    DisputeKind,
    DisputeStatus,
    KpiPeriod,
    KpiTarget,
)
from service.models.partners import Partner, PartnerStatus
from service.models.payouts import Payout, PayoutEntry, PayoutRun, PayoutStatus, UnpaidEntry
from service.models.portal import PortalLink, PortalSession
from service.models.programs import Program

__all__ = [
    "Agreement",
    "AgreementVersion",
    "ApiKey",
    "Application",
    "ApplicationStatus",
    "AttributionMethod",
    "AuditEvent",
    "Base",
    "Click",
    "ClickBountyDay",
    "ClickRollupHourly",
    "ClickRollupSub1Hourly",
    "ClickVisitorDaily",
    "CommissionEntry",
    "Conversion",
    "ConversionStatus",
    "ConversionType",
    "Customer",
    "Deal",
    "DealStatus",
    "DeliveryStatus",
    "Dispute",
    "DisputeKind",
    "DisputeStatus",
    "EntryKind",
    "Event",
    "EventDelivery",
    "EventDeliveryAttempt",
    "EventDeliveryStatus",
    "EventSubscriptions",
    "FxRate",
    "HashKey",
    "Integration",
    "IntegrationDelivery",
    "IntegrationStatus",
    "KpiPeriod",
    "KpiTarget",
    "Link",
    "LinkStatus",
    "MonthTotal",
    "Partner",
    "PartnerStatus",
    "Payout",
    "PayoutEntry",
    "PayoutRun",
    "PayoutStatus",
    "PortalLink",
    "PortalSession",
    "Postback",
    "Program",
    "PromoCode",
    "PromoCodeStatus",
    "Provider",
    "Refund",
    "Role",
    "ServiceSecret",
    "SubscriberStatus",
    "UnpaidEntry",
    "UserAgent",
    "WebhookEndpoint",
]
