/* i8254.h: PC interval timer (8254 PIT) channel 2 and the port-B gate.
 * Spec: Intel 8254 Programmable Interval Timer datasheet (mode 0, control
 * word); port 0x61 (gate 2, speaker, OUT2) as in the IBM PC/AT. */
#ifndef TRACKB_I8254_H
#define TRACKB_I8254_H

#define PIT_HZ         1193182ULL
#define PIT_CH2        0x42
#define PIT_CMD        0x43
#define PIT_CMD_CH2_LOHI_MODE0 0xB0   /* channel 2, lobyte/hibyte, mode 0, binary */
#define PORTB          0x61
#define PORTB_GATE2    0x01
#define PORTB_SPEAKER  0x02
#define PORTB_OUT2     0x20

#endif
