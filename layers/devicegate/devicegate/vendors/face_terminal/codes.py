"""Code tables of the face-recognition access terminal's push protocol (face-terminal-push.zh.txt),
translated from the vendor's Chinese. Each coded field is stored with its name next to it."""

from __future__ import annotations

from devicegate.core.validation import name_of  # noqa: F401  (models call codes.name_of)
from devicegate.core.vocabulary import AlarmStatus, Severity

RECOGNITION_TYPE = {  # recognitionType 识别类型
    1: "employee",  # 员工
    2: "visitor",  # 访客
    3: "stranger",  # 陌生人
    4: "non-live",  # 非活体 (photo or mask attack)
    5: "blacklist",  # 黑名单
}

USER_TYPE = {  # user.type 用户类型
    1: "employee",
    2: "visitor",
    5: "blacklist",
}

MASK = {  # mask 是否佩戴口罩
    0: "detection off",  # 未启用
    1: "no mask",  # 未戴
    2: "mask worn",  # 佩戴
}

VERIFICATION_MODE = {  # mode 核验模式
    0: "face",
    1: "face or card",
    2: "face and card",
    3: "face or card or QR code or PIN",
    4: "ID card",
    5: "face or ID card",
    6: "face and ID card",
    7: "face and PIN",
    8: "face and card and PIN",
    9: "card and PIN",
}

ENTRY_MODE = {  # entry_mode 开门方式
    1: "face",
    2: "QR code",
    3: "card",
    4: "face + card",
    5: "ID card",
    6: "face and ID card",
    7: "health code",
    8: "face + PIN",
    9: "card + PIN",
    10: "face + card + PIN",
    11: "exit button",
    12: "job number + PIN",
}

ABNORMAL_TYPE = {  # abnormal_type 异常事件类型
    0: "none",
    10001: "person and ID card do not match",
    10002: "person and card do not match",
    10003: "person and QR code do not match",
    20001: "visitor outside validity period",
    20002: "outside access hours",
    30001: "invalid ID card",
    30002: "invalid IC card",
    30003: "invalid QR code",
    40001: "abnormal body temperature",
    70001: "wrong PIN",
    70002: "too many wrong PINs",
}

ALARM_CODE = {  # code 告警编码
    10001: "tamper (device removed)",  # 拆机告警
    10002: "door forced open",  # 强制开门告警
    10003: "door sensor timeout",  # 门磁超时告警
    10004: "password attack",  # 密码攻击告警
    20003: "fire alarm",  # 消防告警
}

ALARM_STATUS = {  # status 告警上报事件
    1: "raised",  # 发生告警
    2: "release failed",  # 告警解除失败
    3: "released",  # 告警解除成功
}

#: Alarm status -> lifecycle status and its rank (later steps win a tie on time).
ALARM_LIFECYCLE: dict[int, tuple[AlarmStatus, int]] = {1: ("open", 1), 2: ("release_failed", 2), 3: ("released", 3)}

#: Alarm code -> severity (core/vocabulary.py): all but the door sensor timeout call for action.
ALARM_SEVERITY: dict[int, Severity] = {10001: "critical", 10002: "critical", 10003: "warning", 10004: "critical", 20003: "critical"}
