"""A year in the life of the demo company, generated from a seed without touching the
database: clients with phones, agreements won and lost, the payments and debts that
follow, calls with who rang and who talked, the promises made during them and notes.

Rows are plain dicts; a child refers to its parent by index in the parent's list (the
database ids are only known at insert time), so the whole plan is testable as data.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from callpop.demo.names import (
    AGREEMENT_TERMS,
    AGREEMENT_TITLES,
    NOTE_TEXTS,
    PROMISE_TEXTS,
    company_name,
    person_name,
    phone_raw,
)
from callpop.phones import phone_key
from callpop.settings import Settings
from callpop.store.kpi.contacts import judge, local_day_bounds
from callpop.store.records.regular import window_start

__all__ = ["CAPTURE_CLIENTS", "DemoPlan", "Manager", "plan_demo"]

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Manager:
    id: int
    extension: str


# The numbers in the recorded Asterisk captures (tests/fixtures/ami) and the simulator's
# scenarios: these clients exist with a full history so replayed calls pop real cards.
# +7 495 765-43-21 is an office switchboard shared by two clients: its pop shows candidates.
CAPTURE_CLIENTS: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("Иван Петров", None, ("+7 (916) 123-45-67",)),
    ("ООО «Ромашка»", None, ("8 (903) 111-22-33", "+7 495 111-22-33")),
    ("АО «Вектор»", None, ("+7 (495) 765-43-21",)),
    ("Соколов Павел Андреевич", "АО «Вектор»", ("8 495 765 43 21", "+7 916 765-43-21")),
    ("Britannia Trading Ltd", None, ("+44 20 7946 0958",)),
)
_MOBILE_CODES = ("903", "905", "906", "909", "910", "912", "915", "916", "917", "919", "925", "926",
                 "929", "977", "985", "999")


@dataclass(slots=True)
class DemoPlan:
    clients: list[Row] = field(default_factory=list)
    phones: list[tuple[int, Row]] = field(default_factory=list)
    agreements: list[tuple[int, Row]] = field(default_factory=list)
    payments: list[tuple[int, int, Row]] = field(default_factory=list)  # client, agreement
    receivables: list[tuple[int, int, Row]] = field(default_factory=list)  # client, agreement
    calls: list[tuple[int, Row]] = field(default_factory=list)
    participants: list[tuple[int, Row]] = field(default_factory=list)  # call
    contacts: list[tuple[int, int, Row]] = field(default_factory=list)  # call, client
    promises: list[tuple[int, int | None, Row]] = field(default_factory=list)  # client, call
    notes: list[tuple[int, Row]] = field(default_factory=list)


class _Generator:
    def __init__(self, settings: Settings, managers: list[Manager], now: dt.datetime) -> None:
        self.s = settings
        self.rng = random.Random(settings.demo.seed)
        self.managers = managers
        self.now = now
        self.zone = ZoneInfo(settings.kpi.timezone)
        self.window = window_start(settings, now)
        self.plan = DemoPlan()
        self.used_numbers: set[str] = set()
        self.counted_days: set[tuple[int, int, dt.datetime]] = set()

    # --- time -----------------------------------------------------------------------------
    def moment(self, start: dt.datetime, end: dt.datetime) -> dt.datetime:
        """A working-hours moment (9:00-19:00 local, Mon-Fri) between start and end."""
        end = min(end, self.now)
        if end <= start:
            return end
        for _ in range(20):
            t = start + (end - start) * self.rng.random()
            local = t.astimezone(self.zone)
            if local.isoweekday() <= 5:
                hour = self.rng.randint(9, 18)
                minute = self.rng.randint(0, 59)
                fixed = local.replace(hour=hour, minute=minute, second=self.rng.randint(0, 59)).astimezone(dt.UTC)
                if start <= fixed <= end:
                    return fixed
        return start + (end - start) * self.rng.random()

    def days(self, n: float) -> dt.timedelta:
        return dt.timedelta(days=n)

    # --- clients --------------------------------------------------------------------------
    def new_number(self) -> str:
        while True:
            if self.rng.random() < 0.75:
                e164 = f"+7{self.rng.choice(_MOBILE_CODES)}{self.rng.randint(0, 9_999_999):07d}"
            else:
                e164 = f"+7{self.rng.choice(('495', '499'))}{self.rng.randint(2_000_000, 9_999_999):07d}"
            if e164 not in self.used_numbers:
                self.used_numbers.add(e164)
                return e164

    def add_client(self, name: str, company: str | None, raws: list[str], manager: Manager,
                   created: dt.datetime, index: int) -> int:
        ci = len(self.plan.clients)
        self.plan.clients.append({"name": name, "company": company, "responsible_id": manager.id,
                                  "status": "new", "status_source": "rule", "external_id": f"demo-{index:05d}",
                                  "created_at": created, "updated_at": created})
        for n, raw in enumerate(raws):
            key = phone_key(raw, self.s.phones.default_region, self.s.phones.min_external_digits)
            label = None if len(raws) == 1 else ("основной" if n == 0 else self.rng.choice(("мобильный", "офис")))
            self.plan.phones.append((ci, {"raw": raw, "e164": key.e164, "tail10": key.tail10, "label": label}))
        return ci

    # --- history --------------------------------------------------------------------------
    def agreements(self, ci: int, manager: Manager, created: dt.datetime, count: int) -> int:
        """Agreements with their payments and receivables; returns how many count as paid
        for the regular-client rule (paid inside the window, not lost or cancelled)."""
        paid_in_window = 0
        for _ in range(count):
            made = self.moment(created, self.now - self.days(1))
            recent = (self.now - made).days < 30
            status = self.rng.choices(("open", "won", "lost", "cancelled"),
                                      (60, 25, 10, 5) if recent else (12, 50, 25, 13))[0]
            amount = Decimal(self.rng.choice((15, 25, 40, 60, 85, 120, 180, 250, 400, 750, 1200, 2500)) * 1000
                             + self.rng.randint(0, 9) * 100)
            closed = None if status == "open" else made + self.days(self.rng.uniform(2, 40))
            if closed is not None and closed > self.now:  # still being negotiated today
                status, closed = "open", None
            ai = len(self.plan.agreements)
            self.plan.agreements.append((ci, {
                "title": self.rng.choice(AGREEMENT_TITLES), "terms": self.rng.choice(AGREEMENT_TERMS),
                "amount": amount, "currency": "RUB", "status": status,
                "made_by_id": manager.id if self.rng.random() < 0.85 else self.rng.choice(self.managers).id,
                "created_at": made, "closed_at": closed, "external_id": f"demo-a{ai + 1:06d}"}))
            if status == "won" and closed is not None:
                paid_in_window += self.money(ci, ai, amount, closed)
        return paid_in_window

    def money(self, ci: int, ai: int, amount: Decimal, closed: dt.datetime) -> int:
        due = closed + self.days(self.rng.choice((10, 14, 30)))
        parts = [amount] if self.rng.random() < 0.6 else [(amount / 2).quantize(Decimal("0.01"))] * 2
        paid_at: list[dt.datetime] = []
        when = closed
        for part in parts:
            when = when + self.days(self.rng.uniform(1, 25))
            if when > self.now or self.rng.random() < 0.08:  # not paid (yet)
                break
            paid_at.append(when)
            self.plan.payments.append((ci, ai, {"amount": part, "currency": "RUB", "paid_at": when,
                                                "created_at": when, "external_id": None}))
        settled = paid_at[-1] if len(paid_at) == len(parts) else None
        self.plan.receivables.append((ci, ai, {"amount": amount, "currency": "RUB", "issued_at": closed,
                                               "due_at": due, "settled_at": settled, "external_id": None}))
        return 1 if any(self.window < t <= self.now for t in paid_at) else 0

    def calls(self, ci: int, manager: Manager, number: str, name: str, created: dt.datetime,
              count: int, regular: bool) -> None:
        for _ in range(count):
            # recent months are busier, so this month's KPIs have facts to show
            age = self.rng.uniform(0, 365) if self.rng.random() < 0.45 else min(365.0, self.rng.expovariate(1 / 40))
            start = self.now - self.days(age)
            first = max(start, created)
            started = self.moment(first, min(first + self.days(3), self.now - dt.timedelta(minutes=30)))
            inbound = self.rng.random() < 0.6
            rang = [manager] if not inbound or self.rng.random() < 0.6 else \
                list(dict.fromkeys([manager, *self.rng.sample(self.managers, min(2, len(self.managers)))]))
            answered = self.rng.random() < (0.82 if inbound else 0.7)
            talker = manager if manager in rang and self.rng.random() < 0.85 else self.rng.choice(rang)
            talk = int(min(1800, self.rng.lognormvariate(4.6, 0.9))) if answered else 0
            answered_at = started + dt.timedelta(seconds=self.rng.randint(4, 25)) if answered else None
            ended = (answered_at or started) + dt.timedelta(seconds=talk or self.rng.randint(10, 40))
            ki = len(self.plan.calls)
            direction = "inbound" if inbound else "outbound"
            self.plan.calls.append((ci, {
                "pbx_id": self.s.pbx.id, "call_key": f"demo-{ki + 1:07d}", "direction": direction,
                "client_number": number, "caller_name": name[:200] if inbound else None,
                "started_at": started, "answered_at": answered_at, "ended_at": ended,
                "outcome": "answered" if answered else "missed", "talk_seconds": talk}))
            for m in rang:
                self.plan.participants.append((ki, {"extension": m.extension, "employee_id": m.id,
                                                    "answered": answered and m == talker,
                                                    "talk_seconds": talk if answered and m == talker else 0}))
            if not answered:
                continue
            day = local_day_bounds(started, self.s.kpi.timezone)[0]
            seen = (talker.id, ci, day) in self.counted_days
            verdict = judge(self.s.kpi, direction=direction, talk_seconds=talk, regular=regular,
                            already_counted_today=seen)
            if verdict.counted:
                self.counted_days.add((talker.id, ci, day))
            self.plan.contacts.append((ki, ci, {"employee_id": talker.id, "direction": direction,
                                                "started_at": started, "talk_seconds": talk,
                                                "counted": verdict.counted, "reason": verdict.reason}))
            if talk > 60 and self.rng.random() < 0.35:
                self.promise(ci, talker, ended, ki)
            elif self.rng.random() < 0.15:
                self.plan.notes.append((ci, {"text": self.rng.choice(NOTE_TEXTS), "author_id": talker.id,
                                             "call_id": ki, "created_at": ended}))

    def promise(self, ci: int, manager: Manager, made: dt.datetime, call: int | None,
                due: dt.datetime | None = None, status: str | None = None) -> None:
        if due is None:
            local_day = (made + self.days(self.rng.randint(1, 10))).astimezone(self.zone).date()
            due = dt.datetime.combine(local_day, dt.time(18, 0), self.zone).astimezone(dt.UTC)
        if status is None:
            status = "open" if due > self.now else self.rng.choices(("kept", "broken", "cancelled", "open"),
                                                                    (75, 12, 5, 8))[0]
        closed = None if status == "open" else min(due, self.now) - dt.timedelta(hours=self.rng.randint(0, 48))
        self.plan.promises.append((ci, call, {
            "text": self.rng.choice(PROMISE_TEXTS), "due_at": due, "status": status, "made_by_id": manager.id,
            "created_at": made, "closed_by_id": manager.id if closed else None,
            "closed_at": max(closed, made) if closed else None, "external_id": None}))

    # --- the company ----------------------------------------------------------------------
    def client(self, index: int, name: str, company: str | None, raws: list[str], *,
               agreements: int, calls: int, manual_regular: bool = False) -> int:
        manager = self.managers[index % len(self.managers)]
        if index <= len(CAPTURE_CLIENTS):
            age = 390.0
        else:  # a steady trickle of new clients, so this month's "new to regular" has a fact
            age = self.rng.uniform(0.5, 30) if self.rng.random() < 0.08 else self.rng.uniform(30, 400)
        created = self.now - self.days(age)
        ci = self.add_client(name, company, raws, manager, created, index)
        paid = self.agreements(ci, manager, created, agreements)
        regular = paid >= self.s.kpi.regular_min_paid_agreements
        if manual_regular and not regular:
            self.plan.clients[ci].update(status="regular", status_source="manual")
            regular = True
        elif regular:
            self.plan.clients[ci]["status"] = "regular"
        number = phone_key(raws[0], self.s.phones.default_region, self.s.phones.min_external_digits)
        self.calls(ci, manager, number.display_key, name, created, calls, regular)
        for _ in range(self.rng.choices((0, 1, 2), (50, 35, 15))[0]):
            self.plan.notes.append((ci, {"text": self.rng.choice(NOTE_TEXTS), "author_id": manager.id,
                                         "call_id": None, "created_at": self.moment(created, self.now)}))
        return ci

    def capture_clients(self) -> None:
        for i, (name, company, raws) in enumerate(CAPTURE_CLIENTS, start=1):
            for raw in raws:
                key = phone_key(raw, self.s.phones.default_region, self.s.phones.min_external_digits)
                self.used_numbers.add(key.e164 or raw)
            ci = self.client(i, name, company, list(raws), agreements=5, calls=14, manual_regular=i == 3)
            manager = self.managers[i % len(self.managers)]
            today = self.now.astimezone(self.zone).date()
            evening = dt.datetime.combine(today, dt.time(18, 0), self.zone).astimezone(dt.UTC)
            midnight = dt.datetime.combine(today, dt.time(23, 59, 59), self.zone).astimezone(dt.UTC)
            late = min(max(evening, self.now + dt.timedelta(hours=1)), midnight)
            # one promise of each kind the card shows: overdue, due today, upcoming
            self.promise(ci, manager, self.now - self.days(9), None, due=self.now - self.days(2), status="open")
            self.promise(ci, manager, self.now - self.days(3), None, due=late, status="open")
            self.promise(ci, self.managers[(i + 1) % len(self.managers)], self.now - self.days(1), None,
                         due=self.now + self.days(5), status="open")

    def company(self, clients: int) -> DemoPlan:
        self.capture_clients()
        shared: str | None = None
        for index in range(len(CAPTURE_CLIENTS) + 1, clients + 1):
            is_company = self.rng.random() < 0.4
            name = company_name(self.rng) if is_company else person_name(self.rng)
            employer = None if is_company or self.rng.random() < 0.7 else company_name(self.rng)
            numbers = [self.new_number() for _ in range(2 if self.rng.random() < 0.2 else 1)]
            if index % 250 == 0 and shared is not None:
                numbers = [shared]  # a colleague at the same office number: the card offers both
            shared = numbers[0]
            raws = [phone_raw(n, self.rng) for n in numbers]
            if self.rng.random() < 0.3:  # a key account: buys again and again, calls often
                agreements, calls = self.rng.randint(3, 7), self.rng.randint(4, 12)
            else:
                agreements = self.rng.choices((0, 1, 2, 3), (30, 35, 25, 10))[0]
                calls = self.rng.choices((0, 1, 2, 3, 4, 6), (10, 15, 25, 22, 18, 10))[0]
            self.client(index, name, employer, raws, agreements=agreements, calls=calls,
                        manual_regular=self.rng.random() < 0.015)
        return self.plan


def plan_demo(settings: Settings, managers: list[Manager], now: dt.datetime) -> DemoPlan:
    """The whole demo company for *settings.demo* (same seed, same company)."""
    if not managers:
        raise ValueError("the demo needs at least one manager")
    return _Generator(settings, managers, now).company(max(settings.demo.clients, len(CAPTURE_CLIENTS)))
