"""Whether a generation has started is asked again while the broker has no coordinator for
its group yet (a broker just started): the worker's pass asks it ~1 s after its spawn."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import GroupCoordinatorNotAvailableError, GroupAuthorizationFailedError
from aiokafka.structs import OffsetAndMetadata

from ganshou_metrics.adapters.catch_up import _started


class Admin:
    """The broker's answers, in turn (an exception is raised)."""

    def __init__(self, *answers):
        self.answers, self.asked = list(answers), 0

    async def list_consumer_group_offsets(self, group_id, partitions):
        self.asked += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


TP = TopicPartition("t", 0)


async def test_asked_again_until_the_group_has_a_coordinator() -> None:
    admin = Admin(GroupCoordinatorNotAvailableError(), GroupCoordinatorNotAvailableError(),
                  {TP: OffsetAndMetadata(7, "")})
    assert await _started(admin, "g", [TP]) and admin.asked == 3


async def test_a_refusal_is_not_asked_again() -> None:
    admin = Admin(GroupAuthorizationFailedError(), {TP: OffsetAndMetadata(7, "")})
    with pytest.raises(GroupAuthorizationFailedError):
        await _started(admin, "g", [TP])
    assert admin.asked == 1


async def test_gives_up_after_its_patience() -> None:
    admin = Admin(*[GroupCoordinatorNotAvailableError()] * 3)
    with pytest.raises(GroupCoordinatorNotAvailableError):
        await _started(admin, "g", [TP], patience_s=0.3)
