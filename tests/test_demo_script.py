"""tools/demo.sh (``make demo``): prior families and chain count checked before any work; a test split of another
recipe re-rendered; the chain count and the row started from NMF reach the separation.

The script runs with ``echo`` as its Python, so every step prints its command instead of running it.
"""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def demo(tmp_path: Path, families: str, *chains: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "tools/demo.sh", "echo", str(tmp_path / "demo"), str(tmp_path / "results"), families,
                           *chains], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_unknown_prior_family_fails_before_rendering(tmp_path):
    run = demo(tmp_path, "ncsn bogus")
    assert run.returncode == 2
    assert "error: DEMO_PRIORS: no shipped bogus priors" in run.stderr
    assert "pipeline.render" not in run.stdout


def test_bad_chain_count_fails_before_any_work(tmp_path):
    for chains in ("0", "two", "-1"):
        run = demo(tmp_path, "ncsn", chains)
        assert run.returncode == 2
        assert f"error: DEMO_CHAINS must be a whole number of chains per patch (1, 2, ...), not '{chains}'" in run.stderr
        assert run.stdout == "" and not (tmp_path / "demo").exists()


def test_chain_count_reaches_the_separation(tmp_path):
    default = demo(tmp_path, "ncsn")
    one = demo(tmp_path, "ncsn", "1")
    assert default.returncode == 0 and one.returncode == 0, default.stderr + one.stderr
    assert "--chains" not in default.stdout and "the priors' basis.json chain(s) per patch" in default.stdout
    assert "pretrained/ncsn_violin --chains 1" in one.stdout and "1 chain(s) per patch" in one.stdout


def test_stale_test_split_is_rendered_again_and_a_current_one_is_kept(tmp_path):
    wav = tmp_path / "demo" / "wav"
    (wav / "test" / "mix").mkdir(parents=True)
    (wav / "manifest_test.json").write_text("[]")            # a test split from before the recipe was recorded
    (wav / "manifest_train.json").write_text("[]")
    run = demo(tmp_path, "ncsn glow")
    assert run.returncode == 0, run.stderr
    assert "rendered with another recipe; rendering it again" in run.stdout
    assert not (wav / "test").exists() and (wav / "manifest_train.json").exists()
    assert "--piece-seconds 8 12 --seed 1 --test-fraction 1" in run.stdout
    assert "--ncsn pretrained/ncsn_piano pretrained/ncsn_violin --glow pretrained/glow_piano" in run.stdout
    recipe = (tmp_path / "demo" / "test_recipe.txt").read_text()

    (wav / "manifest_test.json").write_text("[]")            # now rendered with the current recipe
    again = demo(tmp_path, "ncsn")
    assert "another recipe" not in again.stdout and "--test-fraction 1" not in again.stdout
    assert (tmp_path / "demo" / "test_recipe.txt").read_text() == recipe


def test_the_row_started_from_nmf_is_asked_for_and_needs_ncsn_priors(tmp_path):
    default = demo(tmp_path / "a", "ncsn glow")
    asked = demo(tmp_path / "b", "ncsn glow", "", "1")
    assert default.returncode == 0 and asked.returncode == 0, default.stderr + asked.stderr
    assert "--from-nmf" not in default.stdout and "started from NMF" not in default.stdout
    assert "pretrained/glow_violin --from-nmf" in asked.stdout and "and BASIS-NCSN started from NMF" in asked.stdout
    flows = demo(tmp_path / "c", "glow", "", "1")
    assert flows.returncode == 2 and "DEMO_PRIORS must include ncsn (it is 'glow')" in flows.stderr
    bad = demo(tmp_path / "d", "ncsn", "", "yes")
    assert bad.returncode == 2 and "error: DEMO_FROM_NMF must be 0 or 1, not 'yes'" in bad.stderr
    assert flows.stdout == bad.stdout == "" and not (tmp_path / "c" / "demo").exists()


def test_the_nmf_row_uses_the_shipped_model_of_the_default_config(tmp_path):
    """The demo separates with pretrained/nmf/model.npz instead of training NMF; that model must be what
    ``python -m separation.nmf train`` makes now (MODEL.md): the defaults of NMFConfig, on the demo's training split."""
    from separation.nmf import NMFConfig, NMFModel
    run = demo(tmp_path, "ncsn")
    assert run.returncode == 0, run.stderr
    assert "--nmf-model pretrained/nmf/model.npz" in run.stdout and "--nmf-train" not in run.stdout
    model = NMFModel.load(ROOT / "pretrained" / "nmf" / "model.npz")
    assert model.config == NMFConfig()
    assert Path(model.info["wav_dir"]).name == "wav" and Path(model.info["wav_dir"]).parent.name == "demo"
    assert [model.info[s]["files"] for s in ("piano", "violin")] == [12, 12]
