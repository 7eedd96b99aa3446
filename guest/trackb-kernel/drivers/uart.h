/* uart.h: polled 16550 UART driver. */
#ifndef TRACKB_UART_H
#define TRACKB_UART_H

#include <stdint.h>

/* Program 115200 8N1 with FIFOs; returns 0, or -1 if no UART answers at base
 * (scratch register test). */
int uart_init(uint16_t base);
int uart_tx_ready(uint16_t base);
void uart_tx(uint16_t base, uint8_t c);   /* caller checked uart_tx_ready */
int uart_rx_ready(uint16_t base);
uint8_t uart_rx(uint16_t base);           /* caller checked uart_rx_ready */

#endif
