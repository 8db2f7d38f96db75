import { Body, Controller, Get, Headers, Param, ParseIntPipe, Put, Res } from "@nestjs/common";
import type { Response } from "express";
import { versionETag } from "../../src";
import type { Order } from "./order.entity";
import { OrdersService } from "./orders.service";

@Controller("orders")
export class OrdersController {
  constructor(private readonly orders: OrdersService) {}

  @Get(":id")
  async get(@Param("id", ParseIntPipe) id: number, @Res({ passthrough: true }) res: Response): Promise<Order> {
    return withETag(res, await this.orders.get(id));
  }

  @Put(":id/address")
  async setAddress(
    @Param("id", ParseIntPipe) id: number,
    @Body("address") address: string,
    @Headers("if-match") ifMatch: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<Order> {
    return withETag(res, await this.orders.setAddress(id, address, ifMatch));
  }

  @Put(":id/status")
  async setStatus(
    @Param("id", ParseIntPipe) id: number,
    @Body("status") status: string,
    @Headers("if-match") ifMatch: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ): Promise<Order> {
    return withETag(res, await this.orders.setStatus(id, status, ifMatch));
  }
}

function withETag(res: Response, order: Order): Order {
  res.setHeader("ETag", versionETag(order.version));
  return order;
}
