import logging
import pickle

import pytest

from rules_engine.kraken.credentials import (
    Credentials,
    CredentialsError,
    futures_credentials,
    key_fingerprint,
    spot_credentials,
)

from kraken_rest_fakes import API_KEY, SECRET


def test_repr_and_str_show_only_the_fingerprint(caplog):
    creds = Credentials(API_KEY, SECRET)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds]), repr({"c": creds})):
        assert API_KEY not in text and SECRET not in text
        assert key_fingerprint(API_KEY) in text
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("t").info("using %s %r", creds, creds)
    assert SECRET not in caplog.text and API_KEY not in caplog.text


def test_credentials_do_not_pickle_and_have_no_dict():
    creds = Credentials(API_KEY, SECRET)
    with pytest.raises(TypeError):
        pickle.dumps(creds)
    assert not hasattr(creds, "__dict__")


def test_from_environment_variables():
    creds = spot_credentials({"KRAKEN_API_KEY": API_KEY, "KRAKEN_API_SECRET": f" {SECRET}\n"})
    assert creds == Credentials(API_KEY, SECRET)
    assert creds.api_key == API_KEY
    assert spot_credentials({}) is None


def test_from_files(tmp_path):
    key_file, secret_file = tmp_path / "key", tmp_path / "secret"
    key_file.write_text(API_KEY + "\n")
    secret_file.write_text(SECRET + "\n")
    env = {"KRAKEN_FUTURES_API_KEY_FILE": str(key_file), "KRAKEN_FUTURES_API_SECRET_FILE": str(secret_file)}
    assert futures_credentials(env) == Credentials(API_KEY, SECRET)
    assert spot_credentials(env) is None


def test_errors_name_the_variable_never_the_value(tmp_path):
    with pytest.raises(CredentialsError, match="KRAKEN_API_SECRET"):
        spot_credentials({"KRAKEN_API_KEY": API_KEY})
    with pytest.raises(CredentialsError, match="both KRAKEN_API_KEY and KRAKEN_API_KEY_FILE"):
        spot_credentials({"KRAKEN_API_KEY": API_KEY, "KRAKEN_API_KEY_FILE": "/x", "KRAKEN_API_SECRET": SECRET})
    with pytest.raises(CredentialsError, match="cannot read KRAKEN_API_SECRET_FILE") as caught:
        spot_credentials({"KRAKEN_API_KEY": API_KEY, "KRAKEN_API_SECRET_FILE": str(tmp_path / "missing")})
    assert API_KEY not in str(caught.value)
    bad_secret = "not base64 at all!!"
    with pytest.raises(CredentialsError) as caught:
        Credentials(API_KEY, bad_secret)
    assert bad_secret not in str(caught.value)


def test_a_secret_file_that_is_not_utf8_is_an_error_naming_the_variable(tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(b"\xff\xfe" + SECRET.encode())
    with pytest.raises(CredentialsError, match="KRAKEN_API_SECRET_FILE .* is not UTF-8 text") as caught:
        spot_credentials({"KRAKEN_API_KEY": API_KEY, "KRAKEN_API_SECRET_FILE": str(secret_file)})
    assert SECRET not in str(caught.value)
