"""Click-to-call on a real PBX: what is dialled, in which context, and which caller IDs
the two legs carry; the Originate checked as the simulated PBX received it over TCP."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from callpop.dialing import Dial, dial_for, originate_plan
from callpop.settings import AmiSettings, Settings
from callpop.settings_file import SettingsError, settings_from_mapping
from callpop.simulator.pbx import SimulatedPbx
from callpop.store.db import Database
from tests.support.live import StartLive, add_employee, ami_logged_in

RULES = [
    {"pattern": r"^\+7(\d{10})$", "dial": r"8\1"},                          # Russia: 8XXXXXXXXXX
    {"pattern": r"^\+44(\d+)$", "dial": r"+44\1", "context": "uk-trunk"},   # +E164 on another trunk
    {"pattern": r"^\+(\d+)$", "dial": r"810\1"},                            # anywhere else from Russia
]


def _settings(**dialing: object) -> Settings:
    return settings_from_mapping({"dialing": dialing}, environ={})


def test_numbers_are_rewritten_by_the_first_matching_rule() -> None:
    s = _settings(rules=RULES)
    assert dial_for("+79161234567", s) == Dial("89161234567", "from-internal")
    assert dial_for("+442071234567", s) == Dial("+442071234567", "uk-trunk")
    assert dial_for("+380441234567", s).exten == "810380441234567"


def test_without_rules_e164_digits_and_the_prefix() -> None:
    assert dial_for("+79161234567", _settings()).exten == "79161234567"
    assert dial_for("+79161234567", _settings(prefix="9", rules=RULES[:1])).exten == "989161234567"


def test_the_agent_leg_shows_the_agent_and_the_client_sees_the_company() -> None:
    s = _settings(outbound_number="+7 (495) 000-11-22", outbound_numbers={"102": "+74950001102"})
    anna = originate_plan("101", 'Анна "Аня"\nИванова', "+79161234567", s)
    assert anna.caller_id == "Анна Аня Иванова <101>"
    assert anna.variables == (("CALLPOP_OUTBOUND_CID", "+74950001122"),)
    assert originate_plan("102", "Борис", "+79161234567", s).variables == (("CALLPOP_OUTBOUND_CID", "+74950001102"),)
    assert originate_plan("101", "Анна", "+79161234567", _settings()).variables == ()


def test_the_agent_leg_name_is_cleaned_as_the_dialplan_name_is() -> None:
    """A phone that cannot show UTF-8 gets the manager's name in ASCII on click-to-call
    too, cut to the same length as the names the dialplan asks for."""
    s = settings_from_mapping({"dialplan": {"transliterate": True, "name_max_length": 12},
                               "dialing": {"agent_caller_id": "Звонок: {name} <{extension}>"}}, environ={})
    plan = originate_plan("101", 'Анна "Аня"\nИванова', "+79161234567", s)
    assert plan.caller_id == "Zvonok: Anna Ania Iv <101>"
    assert plan.caller_id.isascii()
    unlimited = settings_from_mapping({"dialplan": {"name_max_length": 100}}, environ={})
    long_name = " ".join(["Анна"] * 15)
    assert originate_plan("101", long_name, "+79161234567", unlimited).caller_id == long_name + " <101>"


@pytest.mark.parametrize(("dialing", "message"), [
    ({"rules": [{"pattern": "(", "dial": "x"}]}, "dialing.rules[0]"),
    ({"rules": [{"pattern": r"^\+7(\d+)$", "dial": r"8\2"}]}, "dialing.rules[0]"),
    ({"rules": [{"pattern": "x"}]}, "dialing.rules[0]"),
    ({"rules": "8XXX"}, "dialing.rules"),
    ({"agent_caller_id": "{who}"}, "dialing.agent_caller_id"),
    ({"outbound_numbers": {"101": 74950001122}}, "dialing.outbound_numbers"),
    ({"colour": "red"}, "[dialing] colour"),
])
def test_bad_dialing_settings_stop_start_up_with_the_key(dialing: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        settings_from_mapping({"dialing": dialing}, environ={})


@pytest.fixture
async def pbx() -> AsyncIterator[SimulatedPbx]:
    sim = SimulatedPbx("callpop", "test-secret", agents=("101", "102"), speed=10.0, rng_seed=5)
    sim.port = await sim.start("127.0.0.1", 0)  # type: ignore[attr-defined]
    yield sim
    await sim.stop()


async def test_originate_fields_as_the_pbx_receives_them(db_settings: Settings, db: Database,
                                                         pbx: SimulatedPbx, start_live: StartLive) -> None:
    port: int = pbx.port  # type: ignore[attr-defined]
    settings = db_settings.replace(
        ami=AmiSettings(host="127.0.0.1", port=port, secret="test-secret", reconnect_min=0.05),
        dialing=_settings(rules=RULES, outbound_number="+74950001122",
                          outbound_numbers={"102": "+74950001102"}).dialing,
        pbx=dataclasses.replace(db_settings.pbx, originate_allowed=(r"^7", r"^44")))  # the UK trunk's calls too
    live = await start_live(settings, start_ami=True)
    try:
        await ami_logged_in(live.app)
        await add_employee(db, "anna", ["101"], name="Анна Иванова")
        await add_employee(db, "boris", ["102"], name="Борис")
        for login, number in (("anna", "8 (916) 123-45-67"), ("boris", "+44 20 7123 4567")):
            web = await live.login(login)
            token = (await (await web.get("/api/me")).json())["csrf_token"]
            resp = await web.post("/api/originate", json={"client_phone": number}, headers={"X-CSRF-Token": token})
            assert resp.status == 202, await resp.text()
        received = [{k: v for k, v in o.items() if k != "actionid"} for o in pbx.originates]
        assert received == [
            {"action": "Originate", "channel": "PJSIP/101", "exten": "89161234567", "context": "from-internal",
             "priority": "1", "async": "true", "timeout": "30000", "callerid": "Анна Иванова <101>",
             "variable": "CALLPOP_OUTBOUND_CID=+74950001122"},
            {"action": "Originate", "channel": "PJSIP/102", "exten": "+442071234567", "context": "uk-trunk",
             "priority": "1", "async": "true", "timeout": "30000", "callerid": "Борис <102>",
             "variable": "CALLPOP_OUTBOUND_CID=+74950001102"},
        ]
    finally:
        await live.close()
