"""Trainer: trains a fixed network (a searched genotype or a reference network) from scratch."""

from __future__ import annotations

from typing import Any

from .runner import Runner


class Trainer(Runner):
    """Trains every weight of a fixed network with the ``train`` optimizer.

    The loop, accumulation, clipping, evaluation and outputs are the shared :class:`Runner`'s;
    the best validation epoch's weights are kept in ``weights.h5`` and the test metrics of every
    epoch are reported in ``results.json``.
    """

    search = False

    def run(self) -> dict[str, Any]:
        """Writes the space's own files first (:meth:`~nnabla_nas.contrib.model.Model.export_files`
        into the output folder, rank 0 only: e.g. the ``random_wired`` graphs as ``arch.h5`` and
        ``arch.png``), then runs the loop."""
        if self.comm.is_main:
            try:
                self.model.export_files(self.output)
            except OSError as err:
                raise self._output_error(err) from err
        return super().run()
