/* uart16550.h: 16550A UART registers and bits.
 * Spec: National Semiconductor PC16550D datasheet (register table, LSR, LCR);
 * PC port bases COM1 0x3F8 and COM2 0x2F8 as in the IBM PC/AT. */
#ifndef TRACKB_UART16550_H
#define TRACKB_UART16550_H

#define COM1_BASE 0x3F8
#define COM2_BASE 0x2F8

#define UART_RBR 0   /* receive buffer (read, DLAB=0) */
#define UART_THR 0   /* transmit holding (write, DLAB=0) */
#define UART_DLL 0   /* divisor latch low (DLAB=1) */
#define UART_IER 1   /* interrupt enable (DLAB=0) */
#define UART_DLM 1   /* divisor latch high (DLAB=1) */
#define UART_FCR 2   /* FIFO control (write) */
#define UART_LCR 3   /* line control */
#define UART_MCR 4   /* modem control */
#define UART_LSR 5   /* line status */
#define UART_SCR 7   /* scratch */

#define UART_LCR_8N1   0x03
#define UART_LCR_DLAB  0x80
#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR  0x06   /* clear RX and TX FIFOs */
#define UART_FCR_TRIGGER_14 0xC0 /* RX trigger level 14 bytes */
#define UART_MCR_DTR_RTS_OUT2 0x0B
#define UART_LSR_DR    0x01   /* data ready */
#define UART_LSR_THRE  0x20   /* transmit holding register empty */

#define UART_CLOCK_DIV_115200 1

#endif
