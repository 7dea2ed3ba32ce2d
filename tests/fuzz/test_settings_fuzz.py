"""Settings: any value for any setting (every field, found from the settings groups,
so new ones are covered without editing this file), from overrides, the environment and
a .env file. The result is a Settings whose numbers are finite or a ConfigError that
names the variable; never another exception."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from core.config import ConfigError, Settings, all_settings_defaults, load_settings
from tests.fuzz import FUZZ, budget

NAMES = sorted(name for _group, name, _default, _doc in all_settings_defaults())

SPECIAL = ["", " ", "0", "-0", "1", "-1", "0.5", "1e3", "1e999", "-1e999", "nan", "NaN", "inf",
           "-inf", "Infinity", "0x10", "1_000", "٣", "true", "false", "yes", "off", "2",
           "9" * 5000, "sim", "ibkr", "SIM", "09:30", "24:00", "DEBUG", "debug", "/", ".",
           "/nonexistent/dir/x.log", "sqlite:///", "None", "null", "[]", "{}", '"5"', "5 ",
           "1,5", "€", "ALERT", "starttls", "auto"]

#: text an environment variable can hold (no NUL; no lone surrogates)
env_text = st.one_of(st.sampled_from(SPECIAL),
                     st.text(st.characters(codec="utf-8",
                                           exclude_characters="\x00"), max_size=30))
values = st.one_of(
    env_text,
    st.text(max_size=10),  # surrogates and NUL too: overrides are Python values
    st.integers(-(10**40), 10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.sampled_from([[], {}, b"5", 2**64, (1, 2), Path("x")]),
)


def _numbers(model: BaseModel) -> list[tuple[str, float]]:
    out = []
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            out += _numbers(value)
        elif isinstance(value, float):
            out.append((name, value))
    return out


def _check(result: Settings | ConfigError, names: list[str]) -> None:
    if isinstance(result, ConfigError):
        message = str(result)
        assert message.startswith(("invalid setting: ", "unknown setting(s): ")), message
        assert any(name in message for name in names), (names, message[:300])
        return
    bad = [(n, v) for n, v in _numbers(result) if not math.isfinite(v)]
    assert not bad, f"accepted non-finite settings: {bad}"


def _load(**kw: Any) -> Settings | ConfigError:
    try:
        return load_settings(**kw)
    except ConfigError as exc:
        return exc


@settings(FUZZ, max_examples=budget(300))
@given(st.sampled_from(NAMES), values)
@example("VIX_HALT_THRESHOLD", "inf")  # switched the VIX halt off
@example("MAX_DAILY_LOSS_PCT", "-inf")  # switched the daily loss breaker off
@example("PUTDESK_IBKR_CONNECT_TIMEOUT", "1e999")
def test_any_value_for_any_setting(name: str, value: Any) -> None:
    _check(_load(overrides={name: value}), [name])


@settings(FUZZ, max_examples=budget(60))
@given(st.dictionaries(st.sampled_from(NAMES), values, min_size=2, max_size=6))
def test_several_bad_values_at_once(overrides: dict[str, Any]) -> None:
    _check(_load(overrides=overrides), list(overrides))


@settings(FUZZ, max_examples=budget(40))
@given(st.text(st.characters(codec="ascii", categories=("Lu", "Nd"), include_characters="_"),
               min_size=1, max_size=20).filter(lambda n: n not in NAMES), values)
def test_an_unknown_setting_is_named(name: str, value: Any) -> None:
    result = _load(overrides={name: value})
    assert isinstance(result, ConfigError) and name in str(result)


@settings(FUZZ, max_examples=budget(150))
@given(st.sampled_from(NAMES), env_text)
def test_any_environment_value(name: str, value: str) -> None:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(name, value)
        _check(_load(), [name])


@pytest.fixture(scope="module")
def env_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("envfile")


@settings(FUZZ, max_examples=budget(80))
@given(st.lists(st.tuples(st.sampled_from(NAMES), env_text), min_size=1, max_size=5),
       st.sampled_from(["{}={}", "{}='{}'", '{}="{}"', "export {}={}", "{} = {}"]))
def test_any_env_file(env_dir: Path, lines: list[tuple[str, str]], form: str) -> None:
    path = env_dir / "fuzz.env"
    path.write_text("\n".join(form.format(n, v.replace("\n", " ")) for n, v in lines) + "\n",
                    encoding="utf-8")
    _check(_load(env_file=str(path)), [n for n, _v in lines])
