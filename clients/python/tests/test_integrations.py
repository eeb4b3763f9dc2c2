"""The Lightning logger and the transformers callback, each training a tiny model for a few steps
with the real library and reporting to a real plx (skipped when the library is absent)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import Server, make_server, unique

from plx_client import tracking

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = make_server(tmp_path_factory.mktemp("plx"), None).start()  # SQLite is enough here
    yield server
    server.stop()


def _project(srv: Server) -> str:
    with srv.client() as c:
        return "admin/" + c.create_project(unique("i")).name


def test_lightning_logger(srv: Server, tmp_path):
    pl = pytest.importorskip("pytorch_lightning")
    from plx_client.integrations.lightning import PlxLogger

    class Tiny(pl.LightningModule):
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    project = _project(srv)
    logger = PlxLogger(project, url=srv.url, token=srv.token)
    trainer = pl.Trainer(
        max_steps=6,
        logger=logger,
        log_every_n_steps=1,
        accelerator="cpu",
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Tiny(), torch.utils.data.DataLoader(data, batch_size=4))
    run = logger.experiment
    tracking.finish()
    with srv.client() as c:
        points = list(c.experiment_metrics(project, run.experiment_id))
        exp = c.get_experiment(project, run.experiment_id)
    losses = [p for p in points if "train_loss" in p.values]
    assert len(losses) == 6 and [p.values["step"] for p in losses] == list(range(6))
    assert exp.declarations == {"lr": 0.1} and exp.last_status == "succeeded"


def test_transformers_callback(srv: Server, tmp_path):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from plx_client.integrations.transformers import PlxCallback

    config = transformers.BertConfig(
        vocab_size=64,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    rows = [
        {
            "input_ids": torch.randint(0, 64, (8,)),
            "attention_mask": torch.ones(8, dtype=torch.long),
            "labels": torch.tensor(i % 2),
        }
        for i in range(32)
    ]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=5,
        logging_steps=1,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        disable_tqdm=True,
    )
    project = _project(srv)
    callback = PlxCallback(project, url=srv.url, token=srv.token)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows, callbacks=[callback])
    trainer.train()
    run = tracking.current()
    assert run is not None
    tracking.finish()
    with srv.client() as c:
        points = list(c.experiment_metrics(project, run.experiment_id))
        exp = c.get_experiment(project, run.experiment_id)
    steps = [p.values["step"] for p in points if "loss" in p.values]
    assert steps == [1, 2, 3, 4, 5]
    assert exp.declarations["learning_rate"] == 1e-3 and exp.declarations["max_steps"] == 5
    assert exp.declarations["model"] == "BertForSequenceClassification"
    assert exp.last_status == "succeeded"
