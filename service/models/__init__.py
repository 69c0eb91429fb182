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
from service.models.integrations import (
    DeliveryStatus,
    Integration,
    IntegrationDelivery,
    IntegrationStatus,
    Provider,
)
from service.models.ledger import CommissionEntry, EntryKind, MonthTotal
from service.models.links import Link, LinkStatus, PromoCode, PromoCodeStatus
from service.models.partners import Partner, PartnerStatus
from service.models.payouts import Payout, PayoutEntry, PayoutRun, PayoutStatus
from service.models.programs import Program

__all__ = [
    "Agreement",
    "AgreementVersion",
    "ApiKey",
    "AttributionMethod",
    "AuditEvent",
    "Base",
    "Click",
    "ClickRollupHourly",
    "ClickRollupSub1Hourly",
    "ClickVisitorDaily",
    "CommissionEntry",
    "Conversion",
    "ConversionStatus",
    "ConversionType",
    "Customer",
    "DeliveryStatus",
    "EntryKind",
    "FxRate",
    "HashKey",
    "Integration",
    "IntegrationDelivery",
    "IntegrationStatus",
    "Link",
    "LinkStatus",
    "MonthTotal",
    "Partner",
    "PartnerStatus",
    "Payout",
    "PayoutEntry",
    "PayoutRun",
    "PayoutStatus",
    "Program",
    "PromoCode",
    "PromoCodeStatus",
    "Provider",
    "Refund",
    "Role",
    "ServiceSecret",
]
