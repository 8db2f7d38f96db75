import { Module } from "@nestjs/common";
import { APP_FILTER } from "@nestjs/core";
import { TypeOrmModule } from "@nestjs/typeorm";
import { DataSource } from "typeorm";
import { installLocking } from "../../src";
import { LockingExceptionFilter } from "./locking-exception.filter";
import { Order } from "./order.entity";
import { OrderRepository } from "./order.repository";
import { OrdersController } from "./orders.controller";
import { OrdersService } from "./orders.service";

@Module({
  imports: [
    TypeOrmModule.forRootAsync({
      useFactory: () => ({ type: "better-sqlite3", database: ":memory:", entities: [Order], synchronize: true }),
      // The one line typeorm-locking needs: install it on the DataSource Nest creates.
      dataSourceFactory: async (options) => installLocking(new DataSource(options!)).initialize(),
    }),
  ],
  controllers: [OrdersController],
  providers: [
    OrdersService,
    {
      provide: OrderRepository,
      inject: [DataSource],
      useFactory: (dataSource: DataSource) => new OrderRepository(Order, dataSource.manager),
    },
    { provide: APP_FILTER, useClass: LockingExceptionFilter },
  ],
})
export class AppModule {}
