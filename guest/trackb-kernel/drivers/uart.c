/* uart.c: polled 16550 UART (COM1 console, COM2 AgentX channel). */
#include "drivers/uart.h"
#include "drivers/uart16550.h"
#include "platform/platform.h"

int uart_init(uint16_t base)
{
    /* A missing UART reads as 0xFF everywhere: the scratch register tells. */
    pio_out8(base + UART_SCR, 0x5A);
    if (pio_in8(base + UART_SCR) != 0x5A)
        return -1;
    pio_out8(base + UART_IER, 0);                       /* polled: no interrupts */
    pio_out8(base + UART_LCR, UART_LCR_DLAB);
    pio_out8(base + UART_DLL, UART_CLOCK_DIV_115200);
    pio_out8(base + UART_DLM, 0);
    pio_out8(base + UART_LCR, UART_LCR_8N1);
    /* Trigger level 14: QEMU's model offers the chardev only as many bytes as are
     * left below the trigger level, so level 1 would cost a main-loop round per byte. */
    pio_out8(base + UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR | UART_FCR_TRIGGER_14);
    pio_out8(base + UART_MCR, UART_MCR_DTR_RTS_OUT2);
    return 0;
}

int uart_tx_ready(uint16_t base) { return (pio_in8(base + UART_LSR) & UART_LSR_THRE) != 0; }
void uart_tx(uint16_t base, uint8_t c) { pio_out8(base + UART_THR, c); }
int uart_rx_ready(uint16_t base) { return (pio_in8(base + UART_LSR) & UART_LSR_DR) != 0; }
uint8_t uart_rx(uint16_t base) { return pio_in8(base + UART_RBR); }
