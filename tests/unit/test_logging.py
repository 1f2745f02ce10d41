import logging

from conf.logging import REDACTED, setup_logging


def test_secrets_are_redacted_everywhere_in_a_line_and_its_traceback(tmp_path, capsys):
    token = "123456:ABC-secret-token"
    setup_logging("test", "INFO", [token, "git-token-xyz"], tmp_path / "logs")
    log = logging.getLogger("some.library")
    log.info("POST https://api.telegram.org/bot%s/getUpdates", token)
    try:
        raise RuntimeError(f"failed with token {token} and git-token-xyz")
    except RuntimeError:
        log.exception("boom")
    for handler in logging.getLogger().handlers:
        handler.flush()
    printed = capsys.readouterr().out
    written = (tmp_path / "logs" / "test.log").read_text()
    for text in (printed, written):
        assert token not in text
        assert "git-token-xyz" not in text
        assert REDACTED in text
        assert "RuntimeError" in text
    logging.getLogger().handlers.clear()
